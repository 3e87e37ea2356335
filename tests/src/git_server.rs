//! A git server over HTTP for the tests: real `git http-backend` (CGI)
//! behind a front that lets a request through only with a token the
//! resource server accepts (`Authorization: Bearer TOKEN`, or HTTP Basic
//! with the token as the password), and answers 401 with a challenge
//! otherwise, as a forge does. Clone, fetch and push work as against any
//! smart-HTTP host.
//!
//! What it is not: one user (`REMOTE_USER` is the token's `sub`), every
//! repository under its root exported, nothing logged but counts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use tokio::io::AsyncWriteExt;

use crate::resource_server::{bearer, serve_on_loopback, ResourceServer};

/// The server's repositories and who it trusts.
pub struct GitServer {
    verifier: Arc<ResourceServer>,
    root: PathBuf,
    refused: AtomicU64,
    served: AtomicU64,
    by_bearer: AtomicU64,
}

impl GitServer {
    /// Serves the repositories under `root` on 127.0.0.1 to holders of a
    /// token `verifier` accepts; returns the server and its base URL.
    pub async fn serve(
        verifier: Arc<ResourceServer>,
        root: &Path,
    ) -> Result<(Arc<GitServer>, String), String> {
        let server = Arc::new(GitServer {
            verifier,
            root: root.to_owned(),
            refused: AtomicU64::new(0),
            served: AtomicU64::new(0),
            by_bearer: AtomicU64::new(0),
        });
        let app = Router::new().fallback(cgi).with_state(server.clone());
        Ok((server, serve_on_loopback(app).await?))
    }

    /// Requests refused for want of a good token (401).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Requests passed to git.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Of those, the ones whose token came as `Authorization: Bearer` (the
    /// rest: as a Basic password).
    pub fn served_by_bearer(&self) -> u64 {
        self.by_bearer.load(Ordering::SeqCst)
    }
}

/// The token of a Bearer header, or the password of a Basic one.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = bearer(headers) {
        return Some(token.to_owned());
    }
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

fn challenge(why: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        format!("401 Unauthorized: {why}\n"),
    )
        .into_response();
    let headers = response.headers_mut();
    for scheme in [
        r#"Bearer realm="git", error="invalid_token""#,
        r#"Basic realm="git""#,
    ] {
        headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
    }
    response
}

async fn cgi(
    State(server): State<Arc<GitServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let claims = match presented_token(&headers).map(|token| server.verifier.check(&token)) {
        Some(Ok(claims)) => claims,
        Some(Err(why)) => {
            server.refused.fetch_add(1, Ordering::SeqCst);
            return challenge(&why);
        }
        None => {
            server.refused.fetch_add(1, Ordering::SeqCst);
            return challenge("no token");
        }
    };
    server.served.fetch_add(1, Ordering::SeqCst);
    if bearer(&headers).is_some() {
        server.by_bearer.fetch_add(1, Ordering::SeqCst);
    }
    let user = claims["sub"].as_str().unwrap_or("someone").to_owned();
    let header_text = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &server.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header_text(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header_text(header::CONTENT_ENCODING),
        )
        .env(
            "GIT_PROTOCOL",
            header_text(HeaderName::from_static("git-protocol")),
        )
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let Ok(mut child) = command.spawn() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot run git http-backend\n",
        )
            .into_response();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let Ok(output) = child.wait_with_output().await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "git http-backend failed\n",
        )
            .into_response();
    };
    cgi_response(&output.stdout)
}

/// A CGI answer (RFC 3875 §6: header lines, a blank line, the body) as
/// an HTTP response.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return (
            StatusCode::BAD_GATEWAY,
            "git http-backend gave no headers\n",
        )
            .into_response();
    };
    let mut response = Response::new(axum::body::Body::from(output[at + gap..].to_vec()));
    for line in String::from_utf8_lossy(&output[..at]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            if let Some(status) = code.and_then(|c: u16| StatusCode::from_u16(c).ok()) {
                *response.status_mut() = status;
            }
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.trim()),
            HeaderValue::try_from(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
