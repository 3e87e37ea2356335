//! Logging in from a server's URL alone (`--resource-url`): its Protected
//! Resource Metadata (RFC 9728) names the authorization server and the
//! resource; a client id comes from `--client-id`, else from Dynamic
//! Client Registration (RFC 7591) at that server, kept in the state.
//!
//! The metadata's URL comes from the server's own 401 (`WWW-Authenticate:
//! Bearer resource_metadata="…"`, RFC 9728 §5.1), else from the well-known
//! URL with the resource's path inserted (§3.1). Every document fetched is
//! held to the plugin's rules: https (http only on loopback), no
//! redirects, a bounded size; the metadata's `resource` must be exactly
//! the URL given (§3.3). What it resolves to is kept in the state, so a
//! run that can reuse a token goes to no network at all.
//!
//! What it is not: a login. It turns `--resource-url` into the issuer,
//! client id and resource the rest of the plugin uses as if given.

use authplug_protocol::plugin::Request;
use serde::Deserialize;

use crate::config::{Config, ResourceParam, TokenKind};
use crate::messages::say;
use crate::provider;
use crate::Error;

/// The largest metadata or registration document read.
const DOCUMENT_LIMIT: usize = 64 * 1024;

/// The part of a state that says what a resource URL resolved to.
#[derive(Deserialize)]
struct Resolved {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    protected_resource: Option<String>,
    #[serde(default)]
    resource_indicator: Option<String>,
    #[serde(default)]
    resource_scopes: Vec<String>,
}

/// RFC 9728 §2's members this plugin uses.
#[derive(Deserialize)]
struct ResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// `config` with the issuer, client id and resource `--resource-url`
/// leads to (as is without it).
pub fn resolve(config: &Config, request: &Request) -> Result<Config, Error> {
    let Some(resource_url) = config.resource_url.clone() else {
        return Ok(config.clone());
    };
    // What an earlier run found, if it was for this URL: no network.
    let held: Option<Resolved> = serde_json::from_slice(request.state.as_bytes()).ok();
    if let Some(held) = held.filter(|h| {
        h.protected_resource.as_deref() == Some(resource_url.as_str())
            && !h.issuer.is_empty()
            && !h.client_id.is_empty()
            && (config.client_id.is_empty() || config.client_id == h.client_id)
    }) {
        let resource = held
            .resource_indicator
            .unwrap_or_else(|| resource_url.to_string());
        return Ok(resolved(
            config,
            held.issuer,
            held.client_id,
            resource,
            held.resource_scopes,
        ));
    }
    if request.reason == authplug_protocol::Reason::Logout {
        // Nothing resolved was held: nothing to revoke anywhere.
        return Ok(resolved(
            config,
            String::new(),
            config.client_id.clone(),
            resource_url.to_string(),
            Vec::new(),
        ));
    }
    crate::runtime()?.block_on(discover(config, &resource_url))
}

async fn discover(config: &Config, resource_url: &url::Url) -> Result<Config, Error> {
    let http = client_for(config, resource_url)?;
    let metadata_url = metadata_url(&http, resource_url).await;
    check_url(config, "the resource metadata", &metadata_url)?;
    let metadata: ResourceMetadata = fetch_json(&http, metadata_url.clone(), None).await?;
    // RFC 9728 §3.3: the metadata is about exactly this resource.
    if metadata.resource != resource_url.as_str() {
        return Err(format!(
            "the resource metadata at {metadata_url} is for {:?}, not {resource_url} (RFC 9728 §3.3): not used",
            metadata.resource
        )
        .into());
    }
    let issuer = pick_issuer(config, &metadata)?;
    let client_id = if config.client_id.is_empty() {
        register(config, &issuer).await?
    } else {
        config.client_id.clone()
    };
    let scopes = metadata.scopes_supported;
    Ok(resolved(
        config,
        issuer,
        client_id,
        metadata.resource,
        scopes,
    ))
}

/// The config a run uses: the resolved values in place of the flags.
fn resolved(
    config: &Config,
    issuer: String,
    client_id: String,
    resource: String,
    scopes: Vec<String>,
) -> Config {
    let mut config = config.clone();
    config.issuer = issuer;
    config.client_id = client_id;
    config.resolved_resource = Some(resource.clone());
    config.resolved_scopes = scopes.clone();
    match config.resource_param {
        ResourceParam::Resource if config.resource.is_none() => config.resource = Some(resource),
        ResourceParam::Audience if config.audience.is_none() => config.audience = Some(resource),
        _ => {}
    }
    // An MCP server takes the access token.
    config.token = TokenKind::Access;
    if config.scopes.is_none() && !scopes.is_empty() {
        let mut wanted = vec!["openid".to_owned()];
        wanted.extend(scopes.into_iter().filter(|s| s != "openid"));
        config.scopes = Some(wanted);
    }
    config
}

/// The authorization server: `--issuer` if given (it must be one the
/// metadata lists), else the first listed. A URL with an empty path is
/// the same URL with or without its `/` (RFC 3986 §6.2.3): some servers
/// add one that the issuer itself does not have.
fn pick_issuer(config: &Config, metadata: &ResourceMetadata) -> Result<String, Error> {
    let listed: Vec<String> = metadata
        .authorization_servers
        .iter()
        .map(|server| match url::Url::parse(server) {
            Ok(url) if url.path() == "/" && !server.ends_with("//") => {
                server.trim_end_matches('/').to_owned()
            }
            _ => server.clone(),
        })
        .collect();
    if !config.issuer.is_empty() {
        return if listed.contains(&config.issuer) {
            Ok(config.issuer.clone())
        } else {
            Err(format!(
                "--issuer {} is not among the resource's authorization servers ({})",
                config.issuer,
                listed.join(", ")
            )
            .into())
        };
    }
    let issuer = listed.into_iter().next().ok_or(
        "the resource metadata names no authorization server (authorization_servers): give --issuer",
    )?;
    let mut probe = config.clone();
    probe.issuer = issuer.clone();
    probe
        .validate()
        .map_err(|e| format!("the resource's authorization server {issuer}: {e}"))?;
    Ok(issuer)
}

/// RFC 9728 §5.1 first: the server's 401 may name its metadata; else
/// §3.1's well-known URL, the resource's path after it.
async fn metadata_url(http: &reqwest::Client, resource_url: &url::Url) -> url::Url {
    if let Ok(answer) = http.get(resource_url.clone()).send().await {
        let named = answer
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(authplug_protocol::challenge::bearer_params)
            .find(|(name, _)| name == "resource_metadata")
            .and_then(|(_, value)| url::Url::parse(&value).ok());
        if let Some(url) = named {
            return url;
        }
    }
    let mut url = resource_url.clone();
    let path = resource_url.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// RFC 7591: a public native client with a loopback redirect, registered
/// at the server's `registration_endpoint`; its id is kept in the state.
async fn register(config: &Config, issuer: &str) -> Result<String, Error> {
    // The provider's own discovery, with its issuer and https rules: the
    // endpoint comes from a document that names this issuer.
    let mut probe = config.clone();
    probe.issuer = issuer.to_owned();
    let http = provider::http_client(&probe)?;
    let provider = provider::Provider::discover(&probe, &http, crate::unix_now()).await?;
    let Some(endpoint) = provider.metadata.registration_endpoint() else {
        return Err(format!(
            "the authorization server {issuer} offers no dynamic client registration (RFC 7591): give --client-id (a client registered there, or a client ID metadata document's https URL)"
        )
        .into());
    };
    let endpoint = endpoint.url().clone();
    // As safe as the issuer, as every endpoint.
    provider::check_endpoint(&probe, "registration_endpoint", &endpoint)
        .map_err(|e| e.to_string())?;
    let request = serde_json::json!({
        "client_name": "authplug",
        "application_type": "native",
        "redirect_uris": [format!("http://127.0.0.1{}", config.redirect_path)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
    }
    let registered: Registered = fetch_json(&http, endpoint, Some(request)).await?;
    say(&format!(
        "registered this machine's authplug as client {} at {issuer} (RFC 7591); kept for later runs",
        crate::messages::printable(&registered.client_id)
    ));
    Ok(registered.client_id)
}

/// The plugin's HTTP client, its https rule taken from `url` (the issuer
/// is not known yet).
fn client_for(config: &Config, url: &url::Url) -> Result<reqwest::Client, Error> {
    let mut probe = config.clone();
    probe.issuer = url.as_str().to_owned();
    provider::http_client(&probe)
}

/// https, or http on loopback, as for every endpoint.
fn check_url(config: &Config, what: &str, url: &url::Url) -> Result<(), Error> {
    let mut probe = config.clone();
    probe.issuer = url.as_str().to_owned();
    provider::check_endpoint(&probe, what, url).map_err(|e| e.to_string().into())
}

/// GET (or POST `body`) a JSON document of at most [`DOCUMENT_LIMIT`].
async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: url::Url,
    body: Option<serde_json::Value>,
) -> Result<T, Error> {
    let request = match &body {
        Some(body) => http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string()),
        None => http.get(url.clone()),
    };
    let mut answer = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !answer.status().is_success() {
        return Err(format!("{url} answered HTTP {}", answer.status().as_u16()).into());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > DOCUMENT_LIMIT {
            return Err(format!("{url} answered more than {DOCUMENT_LIMIT} bytes").into());
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{url} is not the JSON expected: {e}").into())
}
