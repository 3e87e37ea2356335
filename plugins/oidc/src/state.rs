//! The plugin's state: versioned JSON holding the tokens, the ID token's
//! subject, and the provider's discovery document and keys with the time
//! they were fetched.
//!
//! Tokens are held in [`Secret`]s (wiped on drop, redacted in Debug), and the
//! serialized bytes go straight into a zeroizing buffer.

use authplug_protocol::{Secret, State};
use serde::{Deserialize, Serialize};

/// Bumped when the layout changes; state of another version is ignored
/// (the user logs in again), never misread.
pub const STATE_VERSION: u32 = 1;

/// A token with the time (Unix seconds) it stops being valid, if known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    pub value: Secret<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl StoredToken {
    pub fn new(value: String, expires_at: Option<u64>) -> Self {
        StoredToken {
            value: Secret::new(value),
            expires_at,
        }
    }

    /// Valid for more than `skew` seconds from `now`. A token whose expiry
    /// is unknown is never reused: we cannot tell it is still good.
    pub fn valid_beyond(&self, now: u64, skew: u64) -> bool {
        matches!(self.expires_at, Some(at) if at > now.saturating_add(skew))
    }

    /// When it expires, for the host (PROTOCOL.md rule 10).
    /// A time past what the clock can hold (a provider's absurd
    /// `expires_in`) is no expiry at all.
    pub fn expiry(&self) -> Option<std::time::SystemTime> {
        let at = std::time::Duration::from_secs(self.expires_at?);
        std::time::UNIX_EPOCH.checked_add(at)
    }
}

/// The provider's discovery document and keys, each with when it was
/// fetched (the keys are fetched again on rotation, the document is not).
/// A cache written before these times were kept apart has neither: 0
/// makes it stale, so the next run that goes online discovers again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderCache {
    pub discovery: serde_json::Value,
    pub jwks: serde_json::Value,
    #[serde(default)]
    pub discovery_fetched_at: u64,
    #[serde(default)]
    pub jwks_fetched_at: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginState {
    pub version: u32,
    pub issuer: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<StoredToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<StoredToken>,
    /// The resource the access token was issued for (`--resource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret<String>>,
    /// The ID token's `sub`: a refreshed ID token must name the same user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderCache>,
    /// Whether this provider's last refresh brought an ID token (OIDC Core
    /// §12.2 makes it optional): when it did not, a run that needs one does
    /// not spend the refresh token on another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_gives_id_token: Option<bool>,
    /// The nonce of the login: a refreshed ID token that carries a nonce
    /// must carry this one (OIDC Core §12.2). None after a device or
    /// client-credentials login, which send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_nonce: Option<String>,
    /// Scopes a server asked for (RFC 6750 §3.1 `insufficient_scope`, in
    /// the challenge the host passed on) beyond `--scopes`: every later
    /// login asks for them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_scopes: Vec<String>,
    /// The scopes the login behind the refresh token asked for; a refresh
    /// cannot widen them (RFC 6749 §6). Empty: `--scopes` (a state from
    /// before this was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_scopes: Vec<String>,
    /// When a login last asked for more scopes (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_at: Option<u64>,
    /// `--resource-url`, when the issuer and client id came from it
    /// (protected_resource.rs): a later run for the same URL uses them
    /// without fetching anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_resource: Option<String>,
    /// The resource its metadata names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_indicator: Option<String>,
    /// The scopes its metadata lists, which logins ask for unless
    /// `--scopes` says otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_scopes: Vec<String>,
}

/// What became of the state we were given.
#[derive(Debug)]
pub enum Loaded {
    Empty,
    Usable(Box<PluginState>),
    /// Present but not ours (another issuer or client, another version, not
    /// our JSON); the reason is told to the user.
    Ignored(String),
}

impl PluginState {
    pub fn new(issuer: &str, client_id: &str) -> Self {
        PluginState {
            version: STATE_VERSION,
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            ..PluginState::default()
        }
    }

    pub fn load(state: &State, issuer: &str, client_id: &str) -> Loaded {
        if state.is_empty() {
            return Loaded::Empty;
        }
        let parsed: PluginState = match serde_json::from_slice(state.as_bytes()) {
            Ok(parsed) => parsed,
            // serde_json's message may quote the input; say only where.
            Err(e) => {
                return Loaded::Ignored(format!(
                    "the state is not this plugin's JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            }
        };
        if parsed.version != STATE_VERSION {
            return Loaded::Ignored(format!(
                "the state has version {}, this plugin writes version {STATE_VERSION}",
                parsed.version
            ));
        }
        if parsed.issuer != issuer || parsed.client_id != client_id {
            return Loaded::Ignored(format!(
                "the state is for issuer {} and client {}, not this one",
                parsed.issuer, parsed.client_id
            ));
        }
        Loaded::Usable(Box::new(parsed))
    }

    /// The JSON bytes, in a buffer that is wiped when the state is dropped.
    pub fn to_state(&self) -> Result<State, serde_json::Error> {
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(self)?);
        Ok(State::new(bytes.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_redacted_debug() {
        let mut state = PluginState::new("https://idp.example", "cli");
        state.refresh_token = Some(Secret::new("rt-secret".into()));
        state.id_token = Some(StoredToken::new("id-secret".into(), Some(100)));
        let bytes = state.to_state().unwrap();
        let debug = format!("{state:?}");
        assert!(!debug.contains("rt-secret") && !debug.contains("id-secret"));
        match PluginState::load(&bytes, "https://idp.example", "cli") {
            Loaded::Usable(back) => {
                assert_eq!(back.refresh_token.unwrap().expose_secret(), "rt-secret");
                assert!(back.id_token.unwrap().valid_beyond(10, 60));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            PluginState::load(&bytes, "https://idp.example", "other"),
            Loaded::Ignored(_)
        ));
        assert!(matches!(
            PluginState::load(&State::new(b"{not json".to_vec()), "a", "b"),
            Loaded::Ignored(_)
        ));
    }

    #[test]
    fn a_cache_with_one_fetch_time_loads_as_stale() {
        let old = br#"{"version":1,"issuer":"https://idp.example","client_id":"cli",
            "provider":{"discovery":{},"jwks":{"keys":[]},"fetched_at":1700000000}}"#;
        match PluginState::load(&State::new(old.to_vec()), "https://idp.example", "cli") {
            Loaded::Usable(state) => {
                let cache = state.provider.expect("the cache");
                assert_eq!((cache.discovery_fetched_at, cache.jwks_fetched_at), (0, 0));
            }
            other => panic!("{other:?}"),
        }
    }
}
