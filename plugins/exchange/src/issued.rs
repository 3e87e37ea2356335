//! A token an exchange handed out, once it is known to be usable.

use std::time::SystemTime;

use authplug_protocol::{Secret, Token};

/// A token longer than this is not one an HTTP header will carry.
const TOKEN_LIMIT: usize = 64 * 1024;

/// The new token, when it ends, and a refresh token if the endpoint gave one.
#[derive(Debug)]
pub struct Issued {
    pub token: Token,
    pub expires_at: Option<SystemTime>,
    pub refresh_token: Option<Secret<String>>,
}

impl Issued {
    /// `token` if it can be sent as a bearer token (RFC 6750: visible
    /// ASCII, no spaces), ending when the answer said (`expires_at`) or
    /// else at its own JWT `exp`.
    pub fn new(token: &str, expires_at: Option<SystemTime>) -> Result<Issued, String> {
        if token.is_empty() {
            return Err("the answer's token is empty".into());
        }
        if token.len() > TOKEN_LIMIT {
            return Err(format!(
                "the answer's token is longer than {TOKEN_LIMIT} bytes"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the answer's token holds spaces, control characters or non-ASCII bytes: no server would take it in a header".into());
        }
        let expires_at = expires_at.or_else(|| authplug_protocol::jwt_expiry(token.as_bytes()));
        Ok(Issued {
            token: Token::from(token),
            expires_at,
            refresh_token: None,
        })
    }
}
