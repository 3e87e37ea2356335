//! A reqwest helper: `Authorization: Bearer`, and one retry on 401.

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{RequestBuilder, Response, StatusCode};
use zeroize::Zeroizing;

use crate::{Broker, BrokerError, TokenRequest};

/// Why [`Broker::send`] has no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("could not get a token: {0}")]
    Token(#[from] BrokerError),
    #[error("the token cannot be sent in an HTTP header (it holds bytes other than visible ASCII): check what the plugin prints")]
    TokenNotAHeader,
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
}

impl Broker {
    /// Sends `request` with `Authorization: Bearer <token>`. On 401 the token
    /// is rejected and, if the request can be sent again (its body is not a
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
        let mut request = request?;
        let mut retries_left = self.options().unauthorized_retries;
        loop {
            let token = self.token_with(token_request.clone()).await?;
            let copy = (retries_left > 0).then(|| request.try_clone()).flatten();
            let (mut attempt, kept) = match copy {
                Some(copy) => (copy, Some(request)),
                None => (request, None),
            };
            attempt
                .headers_mut()
                .insert(AUTHORIZATION, bearer(token.as_bytes())?);
            let response = client.execute(attempt).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // Rejected even when we cannot retry, so the next call gets a
            // new token.
            self.reject(&token);
            match kept {
                Some(original) => {
                    retries_left -= 1;
                    tracing::debug!("401: retrying with a new token");
                    request = original;
                }
                None => return Ok(response),
            }
        }
    }
}

fn bearer(token: &[u8]) -> Result<HeaderValue, HttpError> {
    let mut value = Zeroizing::new(Vec::with_capacity(7 + token.len()));
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token);
    let mut header = HeaderValue::from_bytes(&value).map_err(|_| HttpError::TokenNotAHeader)?;
    header.set_sensitive(true);
    Ok(header)
}
