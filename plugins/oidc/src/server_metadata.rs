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
use crate::messages::say;
use crate::provider::{check_endpoint, check_flag_endpoint, InsecureEndpoint, Metadata};
use crate::Error;

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
    let revocation_known =
        extra.revocation_endpoint.is_some() || config.revocation_endpoint.is_some();
    let device_known =
        extra.device_authorization_endpoint.is_some() || config.device_endpoint.is_some();
    if revocation_known && device_known {
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
    // Only what discovery lacks and no flag gives is taken, and only that
    // is checked.
    let extra = metadata.additional_metadata_mut();
    if extra.revocation_endpoint.is_none() && config.revocation_endpoint.is_none() {
        extra.revocation_endpoint =
            endpoint(config, &document, "revocation_endpoint")?.map(RevocationUrl::from_url);
    }
    if extra.device_authorization_endpoint.is_none() && config.device_endpoint.is_none() {
        extra.device_authorization_endpoint =
            endpoint(config, &document, "device_authorization_endpoint")?
                .map(DeviceAuthorizationUrl::from_url);
    }
    Ok(())
}

/// The endpoint `name` of an RFC 8414 document, if it gives a URL there;
/// refused if it is less safe than the issuer.
fn endpoint(
    config: &Config,
    document: &serde_json::Value,
    name: &str,
) -> Result<Option<url::Url>, InsecureEndpoint> {
    let Some(url) =
        (document.get(name).and_then(|v| v.as_str())).and_then(|t| url::Url::parse(t).ok())
    else {
        return Ok(None);
    };
    check_endpoint(config, name, &url)?;
    Ok(Some(url))
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
    // Read up to the limit, never more, whatever the server sends.
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > DOCUMENT_LIMIT {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).ok()
}

/// The endpoints given by flag (`--revocation-endpoint`,
/// `--device-endpoint`), for a provider that publishes them nowhere. They
/// take the place of whatever the documents say, held to the same safety
/// rule, and are not cached: a flag removed is gone at the next run.
#[derive(Debug, Clone, Default)]
pub struct Flagged {
    pub revocation: Option<RevocationUrl>,
    pub device: Option<DeviceAuthorizationUrl>,
}

impl Flagged {
    pub fn from_config(config: &Config) -> Result<Flagged, InsecureEndpoint> {
        let checked = |name: &str, url: &Option<url::Url>| match url {
            Some(url) => check_flag_endpoint(config, name, url).map(|()| Some(url.clone())),
            None => Ok(None),
        };
        Ok(Flagged {
            revocation: checked("--revocation-endpoint", &config.revocation_endpoint)?
                .map(RevocationUrl::from_url),
            device: checked("--device-endpoint", &config.device_endpoint)?
                .map(DeviceAuthorizationUrl::from_url),
        })
    }
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
