//! The HTTP client for the token and device endpoints: reqwest underneath
//! (through openidconnect's [`AsyncHttpClient`]), plus the two things
//! oauth2 does not do for us.
//!
//! - It remembers the last answer's HTTP status and, for an error, a short
//!   excerpt of its body, sanitized. oauth2 keeps neither when a provider
//!   answers an error without a JSON body (`server returned empty error
//!   response`), and a user needs both to tell a refused refresh token from
//!   a wrong client secret or an outage ([`crate::token_error`]).
//! - It tolerates documented deviations in a successful answer that oauth2
//!   would refuse: `expires_in` as a string (`"3600"`) or a fraction, and a
//!   JSON body labelled with another content type. Nothing that a security
//!   check depends on is touched: the tokens and the ID token pass through
//!   byte for byte.
//! - It keeps the refresh token of a successful answer that oauth2 then
//!   fails to read (an ID token it cannot even parse): that answer started
//!   (or rotated) a grant at the provider all the same, and a refresh token
//!   is never dropped unseen ([`TokenHttp::take_refresh_token`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use openidconnect::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse, RefreshToken};

/// The last answer the provider gave, without anything secret: an error
/// body is an error message, never a token response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// For an error status only: what a body that is not JSON said, or
    /// `None` if it was empty. A JSON body is never quoted (it may be
    /// token-shaped); its OAuth `error` reaches the user through oauth2.
    pub excerpt: Option<String>,
}

/// Wraps the plugin's HTTP client for requests to the token and device
/// endpoints.
pub struct TokenHttp<'a> {
    client: &'a reqwest::Client,
    last: Mutex<Option<Answer>>,
    refresh_token: Mutex<Option<RefreshToken>>,
}

impl<'a> TokenHttp<'a> {
    pub fn new(client: &'a reqwest::Client) -> Self {
        TokenHttp {
            client,
            last: Mutex::new(None),
            refresh_token: Mutex::new(None),
        }
    }

    /// The refresh token of the last successful answer, once: for a
    /// request that failed although the provider answered with one.
    pub fn take_refresh_token(&self) -> Option<RefreshToken> {
        self.refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The last answer, if any request got one.
    pub fn last_answer(&self) -> Option<Answer> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn inspect(&self, response: HttpResponse) -> HttpResponse {
        let (mut parts, body) = response.into_parts();
        let status = parts.status;
        let json = serde_json::from_slice::<serde_json::Value>(&body).ok();
        let answer = Answer {
            status: status.as_u16(),
            excerpt: match &json {
                _ if status.is_success() => None,
                Some(_) => Some("(JSON that is not an OAuth error response)".to_owned()),
                None => excerpt(&body),
            },
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
        let Some(serde_json::Value::Object(mut object)) = json else {
            return HttpResponse::from_parts(parts, body);
        };
        if status.is_success() {
            let refresh_token = object
                .get("refresh_token")
                .and_then(serde_json::Value::as_str)
                .map(|token| RefreshToken::new(token.to_owned()));
            *self.refresh_token.lock().unwrap_or_else(|e| e.into_inner()) = refresh_token;
        }
        // JSON is JSON, whatever the label says (RFC 6749 §5.1 asks for
        // application/json; some providers send text/plain or text/html).
        parts.headers.insert(
            openidconnect::http::header::CONTENT_TYPE,
            openidconnect::http::HeaderValue::from_static("application/json"),
        );
        if !status.is_success() || !normalize_expires_in(&mut object) {
            return HttpResponse::from_parts(parts, body);
        }
        // Only a changed `expires_in` re-encodes the body; every other member
        // keeps its value.
        let body = serde_json::to_vec(&object).unwrap_or(body);
        HttpResponse::from_parts(parts, body)
    }
}

impl<'c, 'a: 'c> AsyncHttpClient<'c> for TokenHttp<'a> {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self.client.call(request).await?;
            Ok(self.inspect(response))
        })
    }
}

/// RFC 6749 §5.1 makes `expires_in` a number of seconds; some providers
/// send a string (`"3599"`) or a fraction. Turns either into whole seconds,
/// and drops a value that is no duration at all (the expiry is then
/// unknown, and such a token is never reused). `true` if anything changed.
fn normalize_expires_in(object: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    let Some(value) = object.get("expires_in") else {
        return false;
    };
    if value.is_u64() {
        return false;
    }
    let seconds = match value {
        serde_json::Value::String(text) => text.trim().parse::<f64>().ok(),
        serde_json::Value::Number(number) => number.as_f64(),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s >= 0.0 && *s < u32::MAX as f64);
    match seconds {
        Some(seconds) => {
            object.insert("expires_in".into(), serde_json::json!(seconds as u64));
        }
        None => {
            object.remove("expires_in");
        }
    }
    true
}

/// Up to this many characters of an error body reach the user.
const EXCERPT_CHARS: usize = 160;

/// An error body as one short, printable line: no control characters,
/// whitespace collapsed, anything token-like redacted, cut at
/// [`EXCERPT_CHARS`]. `None` for an empty body.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|word| if token_like(word) { "[redacted]" } else { word })
        .collect();
    let line: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.is_empty() {
        return None;
    }
    let mut cut: String = line.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < line.len() {
        cut.push_str(" [...]");
    }
    Some(cut)
}

/// A word that could be a credential: a JWT, or a long run of the
/// characters tokens are made of. An error page has no business holding
/// one, but if it does, it must not reach a terminal or a log.
fn token_like(word: &str) -> bool {
    let mut run = 0;
    for c in word.chars() {
        if c.is_ascii_alphanumeric() || "-_.~+/=".contains(c) {
            run += 1;
            if run >= 32 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    word.contains("eyJ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(json: &str) -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
        normalize_expires_in(value.as_object_mut().unwrap());
        value
    }

    #[test]
    fn expires_in_as_a_string_or_a_fraction_becomes_whole_seconds() {
        assert_eq!(normalized(r#"{"expires_in":"3599"}"#)["expires_in"], 3599);
        assert_eq!(normalized(r#"{"expires_in":299.9}"#)["expires_in"], 299);
        assert_eq!(normalized(r#"{"expires_in":300}"#)["expires_in"], 300);
        assert!(normalized(r#"{"expires_in":"soon"}"#)
            .get("expires_in")
            .is_none());
        assert!(normalized(r#"{"expires_in":-5}"#)
            .get("expires_in")
            .is_none());
    }

    #[test]
    fn an_excerpt_is_one_short_printable_line() {
        assert_eq!(excerpt(b""), None);
        assert_eq!(excerpt(b" \n "), None);
        assert_eq!(
            excerpt(b"<html>\n  <b>Bad\x1b[31m</b>\r\n</html>").as_deref(),
            Some("<html> <b>Bad[31m</b> </html>")
        );
        let long = excerpt("no ".repeat(1000).as_bytes()).unwrap();
        assert!(long.len() < 200 && long.ends_with("[...]"), "{long}");
        assert_eq!(
            excerpt(b"<p>token=eyJhbGciOi.x.y and 0123456789abcdef0123456789abcdef</p>").as_deref(),
            Some("[redacted] and [redacted]")
        );
    }
}
