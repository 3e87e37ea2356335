//! The tokens the state holds: which one this profile hands out, and
//! whether it may be handed out again as it is.

use std::time::SystemTime;

use authplug_protocol::plugin::Response;
use authplug_protocol::Token;

use crate::config::{Config, Flow, TokenKind};
use crate::state::{PluginState, StoredToken};

pub(crate) fn wanted(config: &Config) -> TokenKind {
    if config.flow == Flow::ClientCredentials {
        TokenKind::Access
    } else {
        config.token
    }
}

/// A refresh cannot give the token asked for: an ID token is wanted and this
/// provider's last refresh brought none (OIDC Core §12.2 allows that). A
/// refresh would only spend the refresh token.
pub(crate) fn refresh_is_pointless(config: &Config, state: &PluginState) -> bool {
    wanted(config) == TokenKind::Id && state.refresh_gives_id_token == Some(false)
}

/// A token the state holds, and when it expires.
#[derive(Clone)]
pub(crate) struct Held {
    token: Token,
    expires_at: Option<SystemTime>,
}

impl Held {
    pub(crate) fn of(stored: &StoredToken) -> Held {
        Held {
            token: Token::from(stored.value.expose_secret().as_str()),
            expires_at: stored.expiry(),
        }
    }

    /// The answer that hands it out with `state`.
    pub(crate) fn answer(self, state: authplug_protocol::State) -> Response {
        Response::new(self.token, state).expires_at(self.expires_at)
    }
}

pub(crate) fn cached_token(config: &Config, state: &PluginState, now: u64) -> Option<Held> {
    held_token(config, state, now, config.skew)
}

/// The token of the kind asked for that the state holds, if it is valid
/// for more than `skew` seconds.
pub(crate) fn held_token(
    config: &Config,
    state: &PluginState,
    now: u64,
    skew: u64,
) -> Option<Held> {
    let stored = match wanted(config) {
        TokenKind::Id => state.id_token.as_ref(),
        TokenKind::Access if state.access_token_resource == config.access_token_target() => {
            state.access_token.as_ref()
        }
        TokenKind::Access => None,
    }?;
    stored.valid_beyond(now, skew).then(|| Held::of(stored))
}
