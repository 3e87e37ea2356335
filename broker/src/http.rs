//! A reqwest helper: `Authorization: Bearer`, and one retry on 401.

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{RequestBuilder, Response, StatusCode};
use zeroize::Zeroizing;

use crate::{Broker, BrokerError, Failure, TokenRequest, WithTokenError};

/// Why [`Broker::send`] has no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("could not get a token: {0}")]
    /// No token: the plugin run failed.
    Token(#[from] BrokerError),
    #[error("the token cannot be sent in an HTTP header (it holds bytes other than visible ASCII): check what the plugin prints")]
    /// The token holds bytes an HTTP header cannot.
    TokenNotAHeader,
    #[error("HTTP request failed: {0}")]
    /// The request itself failed.
    Request(#[from] reqwest::Error),
    /// Not seen in practice: a retry was asked for a request that could
    /// not be kept for one.
    #[error("the request could not be sent again")]
    NotRepeatable,
}

impl Broker {
    /// Sends `request` with `Authorization: Bearer <token>`. On 401 (or a
    /// 403 whose challenge asks for more scopes, RFC 6750 §3.1) the token
    /// is rejected, with the server's `WWW-Authenticate` challenge for the
    /// plugin, and, if the request can be sent again (its body is not a
    /// stream: [`reqwest::Request::try_clone`]), it is retried with a new
    /// token, up to [`BrokerOptions::unauthorized_retries`](crate::BrokerOptions)
    /// times. The last response is returned as it is, 401 included.
    ///
    /// Tokens come from [`Broker::token`], which may let the plugin open a
    /// browser; a background program uses [`Broker::send_with`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        self.send_with(request, TokenRequest::default()).await
    }

    /// Like [`Broker::send`], getting each token (the first and any after a
    /// 401) as `token_request` says: say
    /// `TokenRequest::new().interactive(false)` for a daemon.
    pub async fn send_with(
        &self,
        request: RequestBuilder,
        token_request: TokenRequest,
    ) -> Result<Response, HttpError> {
        let (client, request) = request.build_split();
        // The request for the next attempt, if there may be one.
        let mut pending = Some(request?);
        let outcome = self
            .with_token_with(token_request, |token| {
                // A copy is kept for a retry when the body allows it.
                let attempt = pending.take();
                pending = attempt.as_ref().and_then(reqwest::Request::try_clone);
                let repeatable = pending.is_some();
                let client = client.clone();
                async move {
                    let Some(mut attempt) = attempt else {
                        return Err(Failure::Other(Attempt::Failed(HttpError::NotRepeatable)));
                    };
                    let header =
                        bearer(token.as_bytes()).map_err(|e| Failure::Other(Attempt::Failed(e)))?;
                    attempt.headers_mut().insert(AUTHORIZATION, header);
                    let response = (client.execute(attempt).await)
                        .map_err(|e| Failure::Other(Attempt::Failed(e.into())))?;
                    // RFC 6750 §3: a 401 may say why, and a 403 that says
                    // `insufficient_scope` wants a token with more scopes:
                    // both reach the plugin (`AUTHPLUG_CHALLENGE`).
                    let challenge = bearer_challenge(&response);
                    let status = response.status();
                    let wants_scope = challenge.as_deref().is_some_and(|c| {
                        !authplug_protocol::challenge::insufficient_scopes(c).is_empty()
                    });
                    match (status, challenge) {
                        (StatusCode::UNAUTHORIZED, Some(challenge))
                        | (StatusCode::FORBIDDEN, Some(challenge))
                            if status == StatusCode::UNAUTHORIZED || wants_scope =>
                        {
                            tracing::debug!(
                                status = status.as_u16(),
                                "refused with a challenge: retrying with a new token"
                            );
                            Err(Failure::Challenged {
                                error: Attempt::Refused(response),
                                challenge,
                                again: repeatable,
                            })
                        }
                        (StatusCode::UNAUTHORIZED, None) if repeatable => {
                            tracing::debug!("401: retrying with a new token");
                            Err(Failure::Unauthorized(Attempt::Refused(response)))
                        }
                        (StatusCode::UNAUTHORIZED, None) => {
                            Err(Failure::UnauthorizedOnce(Attempt::Refused(response)))
                        }
                        _ => Ok(response),
                    }
                }
            })
            .await;
        match outcome {
            Ok(response) => Ok(response),
            Err(WithTokenError::Token(error)) => Err(HttpError::Token(error)),
            // The last answer is returned as it is, 401 included.
            Err(WithTokenError::Unauthorized(Attempt::Refused(response))) => Ok(response),
            Err(WithTokenError::Unauthorized(Attempt::Failed(error)))
            | Err(WithTokenError::Other(Attempt::Failed(error))) => Err(error),
            Err(WithTokenError::Other(Attempt::Refused(response))) => Ok(response),
        }
    }
}

/// One attempt of [`Broker::send_with`] that did not end in a usable answer.
enum Attempt {
    /// HTTP 401, or a 403 asking for more scopes.
    Refused(Response),
    Failed(HttpError),
}

/// The response's `WWW-Authenticate` values, joined, if they are usable
/// as `AUTHPLUG_CHALLENGE` (short visible ASCII).
fn bearer_challenge(response: &Response) -> Option<String> {
    let values: Vec<&str> = response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let joined = values.join(", ");
    authplug_protocol::challenge::usable(&joined).then_some(joined)
}

fn bearer(token: &[u8]) -> Result<HeaderValue, HttpError> {
    let mut value = Zeroizing::new(Vec::with_capacity(7 + token.len()));
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token);
    let mut header = HeaderValue::from_bytes(&value).map_err(|_| HttpError::TokenNotAHeader)?;
    header.set_sensitive(true);
    Ok(header)
}
