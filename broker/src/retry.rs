//! Run an operation with a token, and on "unauthorized" reject that token,
//! get a new one and try again: the one 401 policy, which the HTTP helper
//! ([`Broker::send_with`](crate::Broker)) is built on too.

use std::future::Future;

use authplug_protocol::Token;

use crate::{Broker, BrokerError, TokenRequest};

/// How an operation run by [`Broker::with_token`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The server refused the token (HTTP 401 and the like): worth a new one.
    Unauthorized(E),
    /// The server refused the token, but the operation cannot be run again
    /// (a request whose body was a stream, say): the token is rejected, so
    /// the next call gets a new one, and this one ends here.
    UnauthorizedOnce(E),
    /// The server refused the token and said why in its `WWW-Authenticate`
    /// challenge (say, a 403 `insufficient_scope` naming the scopes it
    /// wants): the token is rejected with that challenge, which the next
    /// run gets (`AUTHPLUG_CHALLENGE`), and, if `again`, the operation is
    /// run once more with the new token (as for [`Failure::Unauthorized`]).
    Challenged {
        /// What the operation saw.
        error: E,
        /// The header's value.
        challenge: String,
        /// Whether the operation can be run again.
        again: bool,
    },
    /// Anything else: returned at once.
    Other(E),
}

/// Why [`Broker::with_token`] gave up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WithTokenError<E> {
    #[error("could not get a token: {0}")]
    /// No token: the plugin run failed.
    Token(#[source] BrokerError),
    /// Still unauthorized after every retry.
    #[error("the server refused a fresh token too")]
    Unauthorized(E),
    /// The operation failed otherwise.
    #[error("the operation failed")]
    Other(E),
}

impl Broker {
    /// Runs `operation` with the current token. When it reports
    /// [`Failure::Unauthorized`], the token is rejected (compare-and-clear,
    /// see [`Broker::reject`]), a new one obtained and the operation run
    /// again, up to [`BrokerOptions::unauthorized_retries`](crate::BrokerOptions) times.
    ///
    /// Tokens come from [`Broker::token`], which may let the plugin open a
    /// browser; a background program uses [`Broker::with_token_with`].
    pub async fn with_token<T, E, F, Fut>(&self, operation: F) -> Result<T, WithTokenError<E>>
    where
        F: FnMut(Token) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        self.with_token_with(TokenRequest::default(), operation)
            .await
    }

    /// Like [`Broker::with_token`], getting each token as `token_request`
    /// says: say `TokenRequest::new().interactive(false)` for a daemon.
    pub async fn with_token_with<T, E, F, Fut>(
        &self,
        token_request: TokenRequest,
        mut operation: F,
    ) -> Result<T, WithTokenError<E>>
    where
        F: FnMut(Token) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let mut retries_left = self.options().unauthorized_retries;
        loop {
            let token = self
                .token_with(token_request.clone())
                .await
                .map_err(WithTokenError::Token)?;
            match operation(token.clone()).await {
                Ok(value) => return Ok(value),
                Err(Failure::Other(error)) => return Err(WithTokenError::Other(error)),
                Err(Failure::Unauthorized(error)) => {
                    self.reject(&token);
                    if retries_left == 0 {
                        return Err(WithTokenError::Unauthorized(error));
                    }
                    retries_left -= 1;
                }
                Err(Failure::UnauthorizedOnce(error)) => {
                    self.reject(&token);
                    return Err(WithTokenError::Unauthorized(error));
                }
                Err(Failure::Challenged {
                    error,
                    challenge,
                    again,
                }) => {
                    self.reject_challenged(&token, Some(&challenge));
                    if !again || retries_left == 0 {
                        return Err(WithTokenError::Unauthorized(error));
                    }
                    retries_left -= 1;
                }
            }
        }
    }
}
