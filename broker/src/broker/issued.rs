//! What a broker hands out: a token and when it expires ([`Issued`]).

use std::time::SystemTime;

use authplug_protocol::Token;

/// A token, and when it expires as far as the broker knows: the earlier of
/// what its plugin reported (PROTOCOL.md rule 10) and its `exp` if it is a
/// JWT; `None` when neither says. For a client that passes the expiry on
/// (kubectl's `expirationTimestamp`, git's `password_expiry_utc`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Issued {
    /// The token (its `Debug` shows no secret).
    pub token: Token,
    /// When it expires, if known.
    pub expires_at: Option<SystemTime>,
}
