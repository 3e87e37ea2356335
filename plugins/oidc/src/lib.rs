//! `authplug-oidc`: the reference authplug plugin for OpenID Connect.
//!
//! It logs a person in once (browser with PKCE, or the device flow), keeps
//! the refresh token in its authplug state, and from then on hands out fresh
//! ID or access tokens silently. Machines use client credentials. It is
//! built on `openidconnect` and adds what that crate leaves to its users:
//! the `iat` and `azp` checks, RFC 9207 callback `iss` checks, key rotation,
//! a loopback listener, and the authplug protocol (through the SDK).
//!
//! What it is not: it does not cache tokens across hosts or decide when a
//! server rejected one (the broker does), and it speaks no protocol of its
//! own: stdin, stdout and fd 3 are the protocol crate's business.

#![warn(missing_docs)]
// stderr is written with `say` (which cannot panic), stdout only by the SDK.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// Only the flags and the plugin are for the binary; the rest is this
// crate's own business.
mod browser;
mod callback;
pub mod config;
mod device;
mod grants;
mod held;
mod login;
mod logout;
mod messages;
mod paste;
mod protected_resource;
mod provider;
mod server_metadata;
mod session;
mod state;
mod token_error;
mod token_http;
mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

use authplug_protocol::plugin::{self, Plugin, Request, Response};
use authplug_protocol::Reason;

use config::Config;
use state::{Loaded, PluginState};
use token_error::TokenError;

use held::{cached_token, held_token, refresh_is_pointless};
use messages::{error_chain, say, without_controls};
use session::run_online;

/// Any error a run reports (the SDK prints it and its causes).
pub type Error = authplug_protocol::plugin::Error;

/// The plugin: a validated configuration.
pub struct OidcPlugin {
    config: Config,
}

impl OidcPlugin {
    /// The plugin for flags that pass [`Config::validate`]; the error says
    /// which flag is wrong.
    pub fn new(config: Config) -> Result<Self, config::FlagError> {
        config.validate()?;
        Ok(OidcPlugin { config })
    }
}

impl Plugin for OidcPlugin {
    fn run(&mut self, request: Request) -> Result<Response, Error> {
        // Messages quote the provider (errors, claims, URLs); whatever got
        // through, no control character reaches the user's terminal.
        let printable = |e: &Error| Error::from(without_controls(&error_chain(&**e)));
        let config = match protected_resource::resolve(&self.config, &request) {
            Ok(config) => config,
            Err(error) => return Err(printable(&error)),
        };
        run(&config, request).map_err(|error| match error.downcast::<plugin::FailedWithState>() {
            Ok(failed) => plugin::fail_keeping_state(printable(&failed.error), failed.state),
            Err(error) => match error.downcast::<plugin::LoginNeeded>() {
                Ok(needed) => plugin::login_needed(printable(&needed.error)),
                Err(error) => printable(&error),
            },
        })
    }
}

/// One run: the cached token if it will do (no network at all), else a
/// refresh, else a login.
fn run(config: &Config, request: Request) -> Result<Response, Error> {
    let now = unix_now();
    if request.reason == Reason::Logout {
        return logout::logout(config, &request, now);
    }
    let state = match PluginState::load(&request.state, &config.issuer, &config.client_id) {
        Loaded::Usable(state) => *state,
        Loaded::Empty => PluginState::new(&config.issuer, &config.client_id),
        Loaded::Ignored(why) => {
            say(&format!("{why}; starting a new session"));
            PluginState::new(&config.issuer, &config.client_id)
        }
    };
    let mut state = state;
    if let Some(url) = &config.resource_url {
        // Kept, so that the next run for this URL needs no network.
        state.protected_resource = Some(url.to_string());
        state.resource_indicator = config.resolved_resource.clone();
        state.resource_scopes = config.resolved_scopes.clone();
    }
    // Every answer says when its token expires (PROTOCOL.md rule 10), so
    // that a host refreshes it in time even when it is opaque.
    let cached = cached_token(config, &state, now);
    if request.may_reuse_token() {
        if let Some(token) = cached {
            return Ok(token.answer(request.state));
        }
    }
    // Asked ahead of expiry (`expiring`) by a host whose token this
    // provider cannot renew without a login: the one held, still valid, is
    // the best there is until it expires (the host then asks for a login).
    if request.reason == Reason::Expiring && refresh_is_pointless(config, &state) {
        if let Some(held) = held_token(config, &state, now, 0) {
            say("this provider gives no new ID token on refresh: the one held stays in use until it expires");
            return Ok(held.answer(request.state));
        }
    }
    // A host that says nothing (epithet) may run us because a server refused
    // the token we hold (PROTOCOL.md rule 1): a fresh one, then, unless the
    // provider cannot give one.
    let fallback = if request.reason_given { None } else { cached };
    if let Some(token) = &fallback {
        if refresh_is_pointless(config, &state) {
            say("the host gave no reason for this run, and this provider gives no new ID token on refresh: handing out the ID token held (still valid); if a server refused it, log in again");
            return Ok(token.clone().answer(request.state));
        }
    }
    let outcome = runtime()?.block_on(run_online(config, state, &request, now));
    match (outcome, fallback) {
        (Err(error), Some(token)) if provider_unavailable(&*error) => {
            say(&format!(
                "{}; handing out the token held (still valid), which a server may have refused",
                error_chain(&*error)
            ));
            Ok(token.answer(request.state))
        }
        (outcome, _) => outcome,
    }
}

/// The runtime for a run that goes online (a run that needs no network
/// starts none).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?)
}

/// The provider gave no answer (or only a temporary error): nothing was
/// refused, nothing changed.
fn provider_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<TokenError>(),
        Some(TokenError::Unreachable { .. } | TokenError::Temporary { .. })
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
