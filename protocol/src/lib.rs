//! The authplug plugin protocol, both sides of it.
//!
//! A *host* (the broker, `authplug run`, your daemon) starts a *plugin* from
//! an argv, writes the plugin's previous state to its stdin, reads a token
//! from its stdout and the new state from file descriptor 3, shows its stderr
//! to the user and judges success by the exit code. `PROTOCOL.md` in this
//! crate is the normative text; every rule in it is enforced here and only
//! here:
//!
//! - [`host::run`] runs a plugin once, with limits, a timeout, process-group
//!   cleanup and concurrent I/O, and returns a typed [`host::RunError`]
//!   ([`host::run_until`] also stops it on demand, and waits until it has).
//! - [`challenge`] carries the challenge of a server that refused a
//!   token (the scopes it asks for) from host to plugin.
//! - [`expiry`] reads when a token expires: what a plugin reports on the
//!   info channel (rule 10), and a JWT's `exp`.
//! - [`plugin`] is the SDK for plugins written in Rust: one [`plugin::Plugin`]
//!   impl and one call to [`plugin::main`].
//! - [`terminal`] reads what the user types on the terminal, for a plugin
//!   that asks there (never on stdin, which carries the state).
//!
//! The host side needs tokio and is behind the default feature `host`; a
//! plugin that only uses the SDK depends on this crate with
//! `default-features = false` and compiles no async runtime:
//!
//! ```toml
//! authplug-protocol = { version = "0.1", default-features = false }
//! ```
//!
//! What this crate is not: it does not cache tokens, retry, or know what a
//! token means (that is the broker's job), and it knows nothing of OAuth or
//! OpenID Connect (that is the OIDC plugin's job).

#![warn(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod challenge;
mod dumps;
pub mod expiry;
#[cfg(feature = "host")]
pub mod host;
pub mod plugin;
mod secret;
#[cfg(feature = "host")]
mod spawn;
pub mod terminal;

pub use challenge::ENV_CHALLENGE;
pub use dumps::forbid_core_dumps;
pub use expiry::{jwt_expiry, ENV_INFO_FD, INFO_FD, INFO_LIMIT};
pub use secret::{Secret, State, Token};

/// Largest state a host accepts on fd 3: exactly 10 MiB is fine, one byte
/// more is an error (rule 4).
pub const STATE_LIMIT: usize = 10 * 1024 * 1024;

/// Largest token a host accepts on stdout (rule 3).
pub const TOKEN_LIMIT: usize = 1024 * 1024;

/// The descriptor on which a plugin writes its new state (rule 4).
pub const STATE_FD: i32 = 3;

/// Set to [`PROTOCOL_VERSION`] for every plugin run (rule 1).
pub const ENV_PROTOCOL: &str = "AUTHPLUG_PROTOCOL";
/// Why the host runs the plugin: see [`Reason`] (rule 1).
pub const ENV_REASON: &str = "AUTHPLUG_REASON";
/// `1` if the plugin may open a browser or prompt, `0` if it must fail
/// instead (rule 1).
pub const ENV_INTERACTIVE: &str = "AUTHPLUG_INTERACTIVE";

/// Set by hosts that keep the state of a failed run when the plugin asks
/// them to (rule 4); its value is the exit code that asks for it,
/// [`KEEP_STATE_EXIT_CODE`].
pub const ENV_KEEP_STATE_EXIT: &str = "AUTHPLUG_KEEP_STATE_EXIT";

/// The exit code with which a plugin says "this run failed, but keep the
/// state I wrote on fd 3" (rule 4). It means that only to a host that set
/// [`ENV_KEEP_STATE_EXIT`]; to any other host it is a failure like any
/// other, and what the plugin wrote is discarded.
pub const KEEP_STATE_EXIT_CODE: i32 = 75;

/// Set by hosts that tell a needed login from other failures (rule 6);
/// its value is the exit code that says so, [`LOGIN_NEEDED_EXIT_CODE`].
pub const ENV_LOGIN_NEEDED_EXIT: &str = "AUTHPLUG_LOGIN_NEEDED_EXIT";

/// The exit code with which a plugin says "a login is needed, and this run
/// may not start one" (rule 6), to a host that set
/// [`ENV_LOGIN_NEEDED_EXIT`]; to any other host it is a failure like any
/// other.
pub const LOGIN_NEEDED_EXIT_CODE: i32 = 77;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Why a host runs a plugin, passed as `AUTHPLUG_REASON`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The host holds no state: first login.
    Initial,
    /// The host holds state and needs a (new) token.
    Refresh,
    /// A server refused the last token: do not hand it out again.
    Rejected,
    /// The host's token still works but nears its end, and the host asks
    /// ahead of time: get a new one (a refresh), never interact. A plugin
    /// that does not know this reason treats it like `Refresh`; the host
    /// copes with getting the same token back.
    Expiring,
    /// The user is logging out: clean up (revoke what the state holds) and
    /// never interact. The host discards whatever the run writes, and a
    /// plugin that does not know this reason treats it like `Refresh`,
    /// which is harmless.
    Logout,
    /// A value from a newer host; plugins should treat it like `Refresh`.
    Unknown(String),
}

impl Reason {
    /// The value of `AUTHPLUG_REASON`.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Initial => "initial",
            Reason::Refresh => "refresh",
            Reason::Rejected => "rejected",
            Reason::Expiring => "expiring",
            Reason::Logout => "logout",
            Reason::Unknown(other) => other,
        }
    }

    /// The reason a host gives when it has no more specific one.
    pub fn for_state(state: &State) -> Reason {
        if state.is_empty() {
            Reason::Initial
        } else {
            Reason::Refresh
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "initial" => Reason::Initial,
            "refresh" => Reason::Refresh,
            "rejected" => Reason::Rejected,
            "expiring" => Reason::Expiring,
            "logout" => Reason::Logout,
            other => Reason::Unknown(other.to_owned()),
        })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_unknown_values_survive() {
        for reason in [
            Reason::Initial,
            Reason::Refresh,
            Reason::Rejected,
            Reason::Expiring,
            Reason::Logout,
        ] {
            assert_eq!(reason.as_str().parse::<Reason>().ok(), Some(reason));
        }
        assert_eq!(
            "step-up".parse::<Reason>().ok(),
            Some(Reason::Unknown("step-up".into()))
        );
    }
}
