//! The one HTTP client of a run, and what an answer looks like to the rest.

use std::io::Read;
use std::time::Duration;

use crate::config::Config;
use crate::Error;

/// An answer larger than this is not a token answer.
pub const ANSWER_LIMIT: u64 = 1024 * 1024;

/// Never follows redirects (a redirected request would carry the subject
/// token somewhere else); plain http only to a loopback endpoint.
pub fn client(config: &Config) -> Result<reqwest::blocking::Client, Error> {
    let mut builder = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!config.endpoint_is_loopback_http())
        .timeout(config.http_timeout())
        .connect_timeout(config.http_timeout().min(Duration::from_secs(10)))
        .user_agent(concat!("authplug-exchange/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {} is not a PEM bundle: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("--ca-file {} holds no certificate", path.display()).into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?)
}

/// An HTTP answer, read whole (up to [`ANSWER_LIMIT`]).
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `WWW-Authenticate`, which may name the error of a 401.
    pub challenge: Option<String>,
}

impl Answer {
    /// Sends `request` and reads the answer; the error says the endpoint
    /// could not be reached, in the user's words.
    pub fn of(request: reqwest::blocking::RequestBuilder, endpoint: &str) -> Result<Answer, Error> {
        let response = request.send().map_err(|e| {
            let why = if e.is_timeout() {
                "it did not answer in time (--http-timeout)".to_owned()
            } else if e.is_connect() {
                format!("cannot connect ({})", innermost(&e))
            } else {
                innermost(&e)
            };
            format!("the exchange endpoint {endpoint} cannot be reached: {why}")
        })?;
        let status = response.status().as_u16();
        let challenge = (response.headers().get(reqwest::header::WWW_AUTHENTICATE))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        response
            .take(ANSWER_LIMIT + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("the exchange endpoint {endpoint} broke off its answer: {e}"))?;
        if body.len() as u64 > ANSWER_LIMIT {
            return Err(format!(
                "the exchange endpoint {endpoint} answered with more than {ANSWER_LIMIT} bytes: not a token answer"
            )
            .into());
        }
        Ok(Answer {
            status,
            body,
            challenge,
        })
    }

    /// The body as a JSON object, if it is one.
    pub fn json_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_slice(&self.body) {
            Ok(serde_json::Value::Object(object)) => Some(object),
            _ => None,
        }
    }

    /// A short, printable excerpt of the body, for an error message.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut shown: String = (text.chars())
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        if text.chars().count() > 200 {
            shown.push('…');
        }
        shown.trim().to_owned()
    }
}

/// The deepest cause: reqwest's outer messages name its own internals.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

/// A value from the other side, safe to print: no control characters, and
/// not endless.
pub fn printable(text: &str) -> String {
    let mut shown: String = (text.chars())
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        shown.push('…');
    }
    shown
}
