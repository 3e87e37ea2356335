//! Why an exchange gave no token, in the two shapes that call for
//! different things: the subject token was refused (it is stale: get a
//! fresh one and try once more), or anything else (say it plainly; a
//! fresh subject token would not change the answer).

use crate::Error;

/// An exchange that gave no token.
#[derive(Debug)]
pub enum Failure {
    /// The endpoint refused the subject token: expired, revoked, or
    /// otherwise no longer good (`invalid_grant`, `invalid_token`, a 401).
    SubjectRefused(String),
    /// Everything else: the exchange itself refused (an audience it will not
    /// serve, a claim rule the login does not meet, the client), an answer
    /// that is no token, an endpoint that cannot be reached.
    Other(Error),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::Other(error.into())
    }
}

/// The words an endpoint gives for a refusal: the usual members of an
/// OAuth or API error body, the first there is.
pub fn described(object: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    ["error_description", "message", "detail", "error"]
        .iter()
        .find_map(|key| object.get(*key).and_then(|value| value.as_str()))
        .map(crate::http::printable)
}

/// The error codes that say the subject token is no good (RFC 6749 §5.2's
/// `invalid_grant`, RFC 6750's `invalid_token`, and the spellings services
/// use for an expired one).
pub fn refuses_subject(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant" | "invalid_token" | "expired_token" | "token_expired"
    )
}

/// Whether a `WWW-Authenticate` value asks for HTTP Basic: the endpoint
/// wants the client's credentials.
pub fn challenge_wants_client(challenge: Option<&str>) -> bool {
    challenge.is_some_and(|value| {
        (value.trim_start().get(..5)).is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"))
    })
}

/// Whether a `WWW-Authenticate` value names `error="invalid_token"`.
pub fn challenge_refuses_subject(challenge: Option<&str>) -> bool {
    challenge.is_some_and(|value| {
        value.contains("error=\"invalid_token\"") || value.contains("error=invalid_token")
    })
}
