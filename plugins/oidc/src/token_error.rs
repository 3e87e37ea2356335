//! Every shape of "no" from a token endpoint, in the user's words.
//!
//! Providers refuse in many shapes: RFC 6749 §5.2's JSON (`invalid_grant`,
//! `invalid_client`, `invalid_scope`), or a bare 400, 401 or 403 with an
//! empty body, an HTML page, a wrong content type. oauth2 reports the JSON
//! ones and calls the rest "empty error response" or a parse error, without
//! the status. [`classify`] puts the status ([`TokenHttp`]'s last answer)
//! back with the error and decides what it means for the user: log in
//! again, fix the client secret or the scopes, or try again later (nothing
//! changed).
//!
//! [`TokenHttp`]: crate::token_http::TokenHttp

use std::fmt;

use openidconnect::{ErrorResponse, HttpClientError, RequestTokenError};

use crate::messages::printable;
use crate::token_http::Answer;

/// What the request was for: the same answer means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Refresh,
    /// The authorization code after a browser login.
    Code,
    ClientCredentials,
    /// Starting the device flow.
    DeviceStart,
    /// Polling for the device flow's tokens.
    DevicePoll,
    /// Revoking a token on logout (RFC 7009).
    Revoke,
}

impl Grant {
    fn doing(self) -> &'static str {
        match self {
            Grant::Refresh => "refreshing the token",
            Grant::Code => "exchanging the login code for tokens",
            Grant::ClientCredentials => "the client credentials grant",
            Grant::DeviceStart => "starting the device flow",
            Grant::DevicePoll => "waiting for the device login",
            Grant::Revoke => "revoking the token on logout",
        }
    }
}

/// The client, as the provider knows it, for messages about it.
pub struct ClientInfo<'a> {
    pub client_id: &'a str,
    pub has_secret: bool,
    /// The scopes that were asked for, for `invalid_scope`.
    pub scopes: Vec<String>,
}

/// What became of a request to the token endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No answer at all: nothing changed on either side.
    #[error("{doing}: cannot reach the provider at {host}: {cause}; nothing was changed, try again when it can be reached")]
    Unreachable {
        doing: &'static str,
        host: String,
        cause: String,
    },
    /// 5xx or 429: the provider's own trouble; the state is kept.
    #[error("{doing}: the provider has a temporary problem (HTTP {status}{detail}); nothing was changed, try again later")]
    Temporary {
        doing: &'static str,
        status: u16,
        detail: Detail,
    },
    /// `invalid_client`, or a bare 401/403 where the client authenticates.
    #[error("{doing}: the provider refused client `{client_id}` (HTTP {status}{detail}): {}", client_hint(*has_secret))]
    ClientRefused {
        doing: &'static str,
        client_id: String,
        has_secret: bool,
        status: u16,
        detail: Detail,
    },
    /// The refresh token is no good (any more): a new login is needed.
    #[error("{doing}: the provider refused the refresh token (HTTP {status}{detail})")]
    RefreshRefused {
        doing: &'static str,
        status: u16,
        detail: Detail,
    },
    /// `invalid_scope`.
    #[error("{doing}: the provider refused the requested scopes ({scopes}) (HTTP {status}{detail}): check --scopes against what the client may ask for")]
    ScopeRefused {
        doing: &'static str,
        scopes: String,
        status: u16,
        detail: Detail,
    },
    /// Any other refusal, as the provider put it.
    #[error("{doing}: the provider refused the request (HTTP {status}{detail})")]
    Refused {
        doing: &'static str,
        status: u16,
        detail: Detail,
    },
    /// A success status whose body is not a token response. Only described:
    /// a token-shaped body may hold secrets.
    #[error(
        "{doing}: the provider's answer (HTTP {status}) is not a valid token response{detail}"
    )]
    Malformed {
        doing: &'static str,
        status: u16,
        detail: Detail,
    },
}

impl TokenError {
    /// The provider said no to the refresh token itself: log in again.
    pub fn is_refused_refresh(&self) -> bool {
        matches!(self, TokenError::RefreshRefused { .. })
    }
}

fn client_hint(has_secret: bool) -> &'static str {
    if has_secret {
        "check the client secret (AUTHPLUG_OIDC_CLIENT_SECRET) and that the client may use this grant"
    } else {
        "check --client-id, and that the provider registers it as a public client allowed this grant"
    }
}

/// What the body of an error answer said, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// RFC 6749 §5.2: `error` and maybe `error_description`.
    OAuth {
        error: String,
        description: Option<String>,
    },
    /// Not JSON (HTML, text): a sanitized excerpt.
    Body(String),
    Empty,
    /// Where a success body failed to parse (a JSON path, never a value).
    At(String),
    None,
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::OAuth { error, description } => {
                write!(f, ": {error}")?;
                match description {
                    Some(description) => write!(f, ": {description}"),
                    None => Ok(()),
                }
            }
            Detail::Body(excerpt) => write!(f, ", body: {excerpt:?}"),
            Detail::Empty => f.write_str(", empty body"),
            Detail::At(path) => write!(f, " (at `{path}`)"),
            Detail::None => Ok(()),
        }
    }
}

/// What a failed token request means, from oauth2's error and the answer
/// that [`TokenHttp`](crate::token_http::TokenHttp) saw.
pub fn classify<T: ErrorResponse + 'static>(
    grant: Grant,
    client: &ClientInfo<'_>,
    error: RequestTokenError<HttpClientError<reqwest::Error>, T>,
    answer: Option<Answer>,
) -> TokenError {
    let doing = grant.doing();
    let (status, detail) = match error {
        RequestTokenError::Request(error) => return unreachable(doing, &error),
        RequestTokenError::ServerResponse(response) => {
            let (error, description) = oauth_parts(&response);
            (
                answer.as_ref().map_or(400, |a| a.status),
                Detail::OAuth { error, description },
            )
        }
        RequestTokenError::Parse(error, _body) => match answer {
            Some(Answer { status, .. }) if (200..300).contains(&status) => {
                return TokenError::Malformed {
                    doing,
                    status,
                    detail: Detail::At(error.path().to_string()),
                }
            }
            Some(answer) => (answer.status, body_detail(&answer)),
            None => {
                return TokenError::Malformed {
                    doing,
                    status: 0,
                    detail: Detail::None,
                }
            }
        },
        RequestTokenError::Other(why) => match answer {
            Some(answer) if !(200..300).contains(&answer.status) => {
                (answer.status, body_detail(&answer))
            }
            Some(answer) => {
                return TokenError::Malformed {
                    doing,
                    status: answer.status,
                    detail: Detail::Body(printable(&why)),
                }
            }
            None => {
                return TokenError::Malformed {
                    doing,
                    status: 0,
                    detail: Detail::Body(printable(&why)),
                }
            }
        },
    };
    judge(grant, client, status, detail)
}

/// The rules, once the status and what the body said are known.
fn judge(grant: Grant, client: &ClientInfo<'_>, status: u16, detail: Detail) -> TokenError {
    let doing = grant.doing();
    let code = match &detail {
        Detail::OAuth { error, .. } => Some(error.as_str()),
        _ => None,
    };
    if status >= 500 || status == 429 || code == Some("temporarily_unavailable") {
        return TokenError::Temporary {
            doing,
            status,
            detail,
        };
    }
    let client_refused = || TokenError::ClientRefused {
        doing,
        client_id: client.client_id.to_owned(),
        has_secret: client.has_secret,
        status,
        detail: detail.clone(),
    };
    match code {
        Some("invalid_client" | "unauthorized_client") => return client_refused(),
        Some("invalid_scope") => {
            return TokenError::ScopeRefused {
                doing,
                scopes: if client.scopes.is_empty() {
                    "none".to_owned()
                } else {
                    client.scopes.join(" ")
                },
                status,
                detail,
            }
        }
        _ => {}
    }
    match grant {
        // Whatever else a provider says to a refresh token (invalid_grant,
        // or a bare 400/401/403 with any body), a new login is the cure.
        Grant::Refresh if code.is_some() || matches!(status, 400 | 401 | 403) => {
            TokenError::RefreshRefused {
                doing,
                status,
                detail,
            }
        }
        // Here the client authenticates and nothing else is at stake: a bare
        // refusal is a refusal of the client.
        Grant::ClientCredentials | Grant::Code | Grant::DeviceStart
            if code.is_none() && matches!(status, 400 | 401 | 403) =>
        {
            client_refused()
        }
        _ => TokenError::Refused {
            doing,
            status,
            detail,
        },
    }
}

fn oauth_parts<T: ErrorResponse>(response: &T) -> (String, Option<String>) {
    // The standard response's Display is "error: description"; its parts
    // are not reachable through the trait, so they are taken from it.
    let text = printable(&response.to_string());
    match text.split_once(": ") {
        Some((error, description)) => (error.to_owned(), Some(description.to_owned())),
        None => (text, None),
    }
}

fn body_detail(answer: &Answer) -> Detail {
    match &answer.excerpt {
        Some(excerpt) => Detail::Body(excerpt.clone()),
        None => Detail::Empty,
    }
}

/// No answer: name the provider's host once, and the innermost cause
/// (reqwest's chain repeats the URL at every level).
fn unreachable(doing: &'static str, error: &HttpClientError<reqwest::Error>) -> TokenError {
    let (host, cause) = match error {
        HttpClientError::Reqwest(error) => {
            let host = error
                .url()
                .and_then(|url| {
                    url.host_str()
                        .map(|host| match url.port_or_known_default() {
                            Some(port) => format!("{host}:{port}"),
                            None => host.to_owned(),
                        })
                })
                .unwrap_or_else(|| "its token endpoint".to_owned());
            let cause = if error.is_timeout() {
                "no answer in time (--http-timeout)".to_owned()
            } else {
                innermost(&**error)
            };
            (host, cause)
        }
        other => ("its token endpoint".to_owned(), innermost(other)),
    };
    TokenError::Unreachable {
        doing,
        host,
        cause: printable(&cause),
    }
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: ClientInfo<'static> = ClientInfo {
        client_id: "cli",
        has_secret: false,
        scopes: Vec::new(),
    };

    #[test]
    fn a_bare_refusal_of_a_refresh_token_means_log_in_again() {
        for status in [400, 401, 403] {
            for detail in [Detail::Empty, Detail::Body("<html>no</html>".into())] {
                let error = judge(Grant::Refresh, &PUBLIC, status, detail);
                assert!(error.is_refused_refresh(), "{error}");
                assert!(error.to_string().contains(&format!("HTTP {status}")));
            }
        }
    }

    #[test]
    fn outages_are_temporary_and_client_refusals_name_the_client() {
        let error = judge(Grant::Refresh, &PUBLIC, 503, Detail::Empty);
        assert!(matches!(error, TokenError::Temporary { .. }), "{error}");
        let svc = ClientInfo {
            client_id: "svc",
            has_secret: true,
            scopes: Vec::new(),
        };
        let error = judge(Grant::ClientCredentials, &svc, 403, Detail::Empty);
        assert_eq!(
            error.to_string(),
            "the client credentials grant: the provider refused client `svc` (HTTP 403, empty body): \
             check the client secret (AUTHPLUG_OIDC_CLIENT_SECRET) and that the client may use this grant"
        );
    }
}
