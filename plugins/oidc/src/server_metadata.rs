//! What a provider's OIDC discovery document leaves out: the endpoints
//! OIDC Discovery 1.0 does not define (revocation, RFC 7009; device
//! authorization, RFC 8628), which some providers publish only in their RFC
//! 8414 authorization server metadata, and the flags that name them for a
//! provider that publishes them in neither.
//!
//! The RFC 8414 document is held to the discovery document's rules: it must
//! name exactly our issuer (RFC 8414 §3.3), and every endpoint it gives must
//! be as safe as the issuer. What it adds is kept with the discovery
//! document in the state, and cached as long.

use openidconnect::{DeviceAuthorizationUrl, RevocationUrl};

use crate::config::Config;
use crate::provider::{check_endpoint, InsecureEndpoint, Metadata};
use crate::{say, Error};

/// Most of an RFC 8414 document read: such documents are a few KiB.
const DOCUMENT_LIMIT: usize = 256 * 1024;

/// The RFC 8414 metadata URL for `issuer` (§3.1): the well-known suffix
/// goes between the host and the issuer's path, so
/// `https://id.example.com/tenant` has
/// `https://id.example.com/.well-known/oauth-authorization-server/tenant`.
pub fn metadata_url(issuer: &str) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(issuer)?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Ok(url)
}

/// Fills in, from the RFC 8414 document, the endpoints discovery did not
/// list. Best effort: a provider without one (404), or one that cannot be
/// read, leaves them as they were; a document for another issuer is
/// ignored, and said so. An endpoint it gives that is less safe than the
/// issuer is refused, as in discovery.
pub async fn supplement(
    config: &Config,
    http: &reqwest::Client,
    metadata: &mut Metadata,
) -> Result<(), Error> {
    let extra = metadata.additional_metadata();
    if extra.revocation_endpoint.is_some() && extra.device_authorization_endpoint.is_some() {
        return Ok(());
    }
    let Ok(url) = metadata_url(&config.issuer) else {
        return Ok(());
    };
    let Some(document) = fetch(http, url.clone()).await else {
        return Ok(());
    };
    if document.get("issuer").and_then(|i| i.as_str()) != Some(config.issuer.as_str()) {
        say(&format!(
            "ignoring the authorization server metadata at {url}: it does not name the issuer {} (RFC 8414 §3.3)",
            config.issuer
        ));
        return Ok(());
    }
    let endpoint = |name: &str| -> Result<Option<url::Url>, InsecureEndpoint> {
        let Some(text) = document.get(name).and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let Ok(url) = url::Url::parse(text) else {
            return Ok(None);
        };
        check_endpoint(config, name, &url)?;
        Ok(Some(url))
    };
    let revocation = endpoint("revocation_endpoint")?;
    let device = endpoint("device_authorization_endpoint")?;
    let extra = metadata.additional_metadata_mut();
    if extra.revocation_endpoint.is_none() {
        extra.revocation_endpoint = revocation.map(RevocationUrl::from_url);
    }
    if extra.device_authorization_endpoint.is_none() {
        extra.device_authorization_endpoint = device.map(DeviceAuthorizationUrl::from_url);
    }
    Ok(())
}

async fn fetch(http: &reqwest::Client, url: url::Url) -> Option<serde_json::Value> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().await.ok()?;
    if body.len() > DOCUMENT_LIMIT {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

/// `--revocation-endpoint` and `--device-endpoint`, for a provider that
/// publishes them nowhere: they take the place of whatever the documents
/// say, held to the same safety rule.
pub fn apply_flags(config: &Config, metadata: &mut Metadata) -> Result<(), InsecureEndpoint> {
    if let Some(url) = &config.revocation_endpoint {
        check_endpoint(config, "--revocation-endpoint", url)?;
        metadata.additional_metadata_mut().revocation_endpoint =
            Some(RevocationUrl::from_url(url.clone()));
    }
    if let Some(url) = &config.device_endpoint {
        check_endpoint(config, "--device-endpoint", url)?;
        metadata
            .additional_metadata_mut()
            .device_authorization_endpoint = Some(DeviceAuthorizationUrl::from_url(url.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_suffix_goes_between_host_and_path() {
        for (issuer, expected) in [
            (
                "https://id.example.com",
                "https://id.example.com/.well-known/oauth-authorization-server",
            ),
            (
                "https://id.example.com/",
                "https://id.example.com/.well-known/oauth-authorization-server",
            ),
            (
                "https://id.example.com/tenant/v2",
                "https://id.example.com/.well-known/oauth-authorization-server/tenant/v2",
            ),
            (
                "http://127.0.0.1:8080/realms/dev/",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/realms/dev",
            ),
        ] {
            assert_eq!(metadata_url(issuer).unwrap().as_str(), expected, "{issuer}");
        }
    }
}
