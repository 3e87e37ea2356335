//! The provider: an HTTP client that never follows redirects and speaks
//! only https (except to a loopback issuer in local development), discovery
//! with an exact issuer match and endpoints checked the same way (what it
//! leaves out: `server_metadata`), and the JWKS, cached in the state.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AsyncHttpClient, ClientId, DeviceAuthorizationUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, HttpRequest, IssuerUrl,
    ProviderMetadata, RevocationUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::{is_loopback, Config};
use crate::server_metadata::{self, Flagged};
use crate::state::ProviderCache;
use crate::Error;

/// How long a cached discovery document and JWKS are trusted before a run
/// that needs the network anyway fetches them again.
const CACHE_TTL: u64 = 24 * 60 * 60;

/// Discovery fields openidconnect's core metadata does not carry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
    /// RFC 7009 (named in discovery by RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<RevocationUrl>,
    /// RFC 9207: the provider puts `iss` in every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The client as built from discovery: authorization endpoint set, token
/// endpoint maybe.
pub type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The HTTP client for every request to the provider. Redirects are never
/// followed: a token request that is redirected could carry a code or secret
/// somewhere else (the openidconnect docs' SSRF advice). Plain http is
/// refused outright unless the issuer itself is http on loopback: codes,
/// PKCE verifiers, secrets and refresh tokens travel in these requests, and
/// keys fetched in the clear could be forged.
pub fn http_client(config: &Config) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!config.issuer_is_loopback_http())
        .timeout(config.http_timeout())
        .connect_timeout(config.http_timeout().min(Duration::from_secs(10)))
        .user_agent(concat!("authplug-oidc/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {} is not a PEM bundle: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("--ca-file {} holds no certificate", path.display()).into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?)
}

/// The provider's metadata (with its keys) and when each was fetched.
#[derive(Debug, Clone)]
pub struct Provider {
    pub metadata: Metadata,
    /// Endpoints given by flag: they win over the metadata's, and are not
    /// cached with it.
    pub flagged: Flagged,
    pub discovery_fetched_at: u64,
    pub jwks_fetched_at: u64,
}

impl Provider {
    /// The cached copy if it is fresh and still parses, else a new fetch.
    pub async fn load_or_discover(
        config: &Config,
        cache: Option<&ProviderCache>,
        http: &reqwest::Client,
        now: u64,
    ) -> Result<Provider, Error> {
        if let Some(cache) = cache {
            let fresh = |at: u64| now.saturating_sub(at) < CACHE_TTL;
            if fresh(cache.discovery_fetched_at) && fresh(cache.jwks_fetched_at) {
                if let Some(provider) = Provider::from_cache(config, cache) {
                    return Ok(provider);
                }
            }
        }
        Provider::discover(config, http, now).await
    }

    fn from_cache(config: &Config, cache: &ProviderCache) -> Option<Provider> {
        let metadata: Metadata = serde_json::from_value(cache.discovery.clone()).ok()?;
        let jwks: CoreJsonWebKeySet = serde_json::from_value(cache.jwks.clone()).ok()?;
        if metadata.issuer().as_str() != config.issuer {
            return None;
        }
        // A cache an older version wrote unchecked: discover again, which
        // says what is wrong.
        check_endpoints(config, &metadata).ok()?;
        Some(Provider {
            metadata: metadata.set_jwks(jwks),
            // An unsafe flag: discovery again, which says so.
            flagged: Flagged::from_config(config).ok()?,
            discovery_fetched_at: cache.discovery_fetched_at,
            jwks_fetched_at: cache.jwks_fetched_at,
        })
    }

    pub async fn discover(
        config: &Config,
        http: &reqwest::Client,
        now: u64,
    ) -> Result<Provider, Error> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| format!("--issuer {} is not a URL: {e}", config.issuer))?;
        // openidconnect fetches the JWKS within discovery: check its URL
        // before that request goes out. (The discovery URL is the issuer's,
        // checked with the flags.)
        let discovery_url = issuer
            .join(".well-known/openid-configuration")
            .map_err(|e| format!("--issuer {} is not a URL: {e}", config.issuer))?;
        // The issuer the document names, for a hint when it differs.
        let named_issuer = std::sync::Mutex::new(None::<String>);
        let guarded = |request: HttpRequest| {
            let is_discovery =
                url::Url::parse(&request.uri().to_string()).is_ok_and(|url| url == discovery_url);
            let allowed = match url::Url::parse(&request.uri().to_string()) {
                Ok(_) if is_discovery => Ok(()),
                Ok(url) => check_endpoint(config, "jwks_uri", &url).map_err(|e| e.to_string()),
                Err(e) => Err(format!("the provider's jwks_uri is not a URL: {e}")),
            };
            let named_issuer = &named_issuer;
            async move {
                allowed.map_err(HttpClientError::<reqwest::Error>::Other)?;
                let response = http.call(request).await?;
                if is_discovery {
                    let issuer = serde_json::from_slice::<serde_json::Value>(response.body())
                        .ok()
                        .and_then(|doc| doc.get("issuer")?.as_str().map(str::to_owned));
                    *named_issuer.lock().unwrap_or_else(|e| e.into_inner()) = issuer;
                }
                Ok::<_, HttpClientError<reqwest::Error>>(response)
            }
        };
        let discovered = Metadata::discover_async(issuer, &guarded).await;
        let named_issuer = named_issuer.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(named) = named_issuer.filter(|named| *named != config.issuer) {
            return Err(issuer_mismatch(&config.issuer, &named).into());
        }
        let metadata = discovered.map_err(|e| {
            format!(
                "discovery at {}/.well-known/openid-configuration failed: {}",
                config.issuer.trim_end_matches('/'),
                crate::messages::error_chain(&e)
            )
        })?;
        // openidconnect compares too, but say it here in so many words: the
        // document must name exactly the issuer we were told to trust.
        if metadata.issuer().as_str() != config.issuer {
            return Err(issuer_mismatch(&config.issuer, metadata.issuer().as_str()).into());
        }
        check_endpoints(config, &metadata)?;
        let mut metadata = metadata;
        server_metadata::supplement(config, http, &mut metadata).await?;
        Ok(Provider {
            metadata,
            flagged: Flagged::from_config(config)?,
            discovery_fetched_at: now,
            jwks_fetched_at: now,
        })
    }

    /// Fetches the JWKS again (after an unknown `kid`: the keys rotated).
    pub async fn refetch_jwks(&mut self, http: &reqwest::Client, now: u64) -> Result<(), Error> {
        let jwks = CoreJsonWebKeySet::fetch_async(self.metadata.jwks_uri(), http)
            .await
            .map_err(|e| {
                format!(
                    "fetching the provider's keys failed: {}",
                    crate::messages::error_chain(&e)
                )
            })?;
        self.metadata = self.metadata.clone().set_jwks(jwks);
        // Only the keys are new: the document keeps its own age.
        self.jwks_fetched_at = now;
        Ok(())
    }

    pub fn to_cache(&self) -> Result<ProviderCache, Error> {
        Ok(ProviderCache {
            discovery: serde_json::to_value(&self.metadata)?,
            jwks: serde_json::to_value(self.metadata.jwks())?,
            discovery_fetched_at: self.discovery_fetched_at,
            jwks_fetched_at: self.jwks_fetched_at,
        })
    }

    pub fn client(&self, config: &Config) -> OidcClient {
        CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(config.client_id.clone()),
            config.client_secret.clone(),
        )
    }

    pub fn device_endpoint(&self) -> Option<&DeviceAuthorizationUrl> {
        (self.flagged.device.as_ref()).or(self
            .metadata
            .additional_metadata()
            .device_authorization_endpoint
            .as_ref())
    }

    pub fn revocation_endpoint(&self) -> Option<&RevocationUrl> {
        (self.flagged.revocation.as_ref()).or(self
            .metadata
            .additional_metadata()
            .revocation_endpoint
            .as_ref())
    }

    pub fn requires_callback_iss(&self) -> bool {
        self.metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
    }

    pub fn supports_scope(&self, scope: &str) -> bool {
        self.metadata
            .scopes_supported()
            .is_some_and(|scopes| scopes.iter().any(|s| s.as_str() == scope))
    }
}

/// The discovery document names another issuer than `--issuer`. Tokens name
/// the document's issuer, so they would all be refused: say so, with the
/// exact value when only a trailing slash differs (Auth0 and others end
/// theirs with one).
fn issuer_mismatch(given: &str, named: &str) -> String {
    let mut message = format!(
        "the provider's discovery document names the issuer {named:?}, not {given:?}; refusing it"
    );
    if named.trim_end_matches('/') == given.trim_end_matches('/') {
        message.push_str(&format!(
            " (the two differ only in the trailing slash: use --issuer {named} exactly)"
        ));
    }
    message
}

/// Every endpoint this plugin sends credentials to, or takes keys or the
/// user's browser from, must be as safe as the issuer: https, or http on
/// loopback when the issuer is http on loopback (local development).
fn check_endpoints(config: &Config, metadata: &Metadata) -> Result<(), InsecureEndpoint> {
    check_endpoint(
        config,
        "authorization_endpoint",
        metadata.authorization_endpoint().url(),
    )?;
    if let Some(token) = metadata.token_endpoint() {
        check_endpoint(config, "token_endpoint", token.url())?;
    }
    check_endpoint(config, "jwks_uri", metadata.jwks_uri().url())?;
    if let Some(device) = &metadata.additional_metadata().device_authorization_endpoint {
        check_endpoint(config, "device_authorization_endpoint", device.url())?;
    }
    Ok(())
}

/// An endpoint the provider names (or a flag gives) that is not as safe as
/// the issuer.
#[derive(Debug, thiserror::Error)]
#[error("{} {url}, which is not https{}; refusing it (codes, secrets, tokens and keys would travel in the clear)", if *by_flag { format!("{name} is") } else { format!("the provider gives its {name} as") }, if *issuer_is_loopback_http { " (plain http is allowed only on loopback addresses, as the issuer is)" } else { "" })]
pub struct InsecureEndpoint {
    name: String,
    url: url::Url,
    /// Given by the flag `name`, not by the provider.
    by_flag: bool,
    issuer_is_loopback_http: bool,
}

/// An endpoint the provider names, checked to be as safe as the issuer.
pub fn check_endpoint(config: &Config, name: &str, url: &url::Url) -> Result<(), InsecureEndpoint> {
    check(config, name, url, false)
}

/// An endpoint a flag gives, held to the same rule as the provider's.
pub fn check_flag_endpoint(
    config: &Config,
    flag: &str,
    url: &url::Url,
) -> Result<(), InsecureEndpoint> {
    check(config, flag, url, true)
}

fn check(
    config: &Config,
    name: &str,
    url: &url::Url,
    by_flag: bool,
) -> Result<(), InsecureEndpoint> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if config.issuer_is_loopback_http() && is_loopback(url) => Ok(()),
        _ => Err(InsecureEndpoint {
            name: name.to_owned(),
            url: url.clone(),
            by_flag,
            issuer_is_loopback_http: config.issuer_is_loopback_http(),
        }),
    }
}
