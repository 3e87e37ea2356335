//! The state between runs: the exchanged token and when it ends (so that a
//! host which keeps state across restarts need not trade again), and a
//! refresh token if the endpoint gave one. Never the subject token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authplug_protocol::{Secret, State, Token};
use serde::{Deserialize, Serialize};

/// The layout's version; another one is started afresh.
const VERSION: u32 = 1;

/// A held token this close to its end is traded again instead.
pub const MARGIN: Duration = Duration::from_secs(30);

#[derive(Default, Serialize, Deserialize)]
pub struct Held {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret<String>>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret<String>>,
}

impl Held {
    /// The state a host handed in; one that is not ours is dropped with a
    /// note (it holds nothing that a new exchange cannot replace).
    pub fn load(state: &State) -> Held {
        if state.is_empty() {
            return Held::default();
        }
        match serde_json::from_slice::<Held>(state.as_bytes()) {
            Ok(held) if held.v == VERSION => held,
            _ => {
                crate::say("authplug-exchange: the state is not this version's; trading afresh");
                Held::default()
            }
        }
    }

    /// What to keep after a run that got `token`.
    pub fn new(
        token: &Token,
        expires_at: Option<SystemTime>,
        refresh_token: Option<Secret<String>>,
    ) -> Held {
        Held {
            v: VERSION,
            token: token.to_str().ok().map(|text| Secret::new(text.to_owned())),
            expires_at: expires_at
                .map(|at| at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()),
            refresh_token,
        }
    }

    /// The held token, if it is still good for [`MARGIN`] and its end is
    /// known (a token of unknown lifetime is traded again: nothing says it
    /// still works).
    pub fn usable_token(&self, now: SystemTime) -> Option<(Token, SystemTime)> {
        let at = UNIX_EPOCH + Duration::from_secs(self.expires_at?);
        let token = self.token.as_ref()?;
        (at > now + MARGIN).then(|| (Token::from(token.expose_secret().as_str()), at))
    }

    pub fn to_state(&self) -> State {
        // Plain data: serializing cannot fail.
        State::new(serde_json::to_vec(self).unwrap_or_default())
    }
}
