//! The loopback listener that receives the browser's redirect after login.
//!
//! It answers only the redirect path. A request whose `state` is missing or
//! wrong gets an error page and is otherwise ignored (anything on this
//! machine can call us; only the login we started counts). The first request
//! with the right `state` ends the wait, with a code or an error.
//!
//! Any local user can connect, so nobody can starve it: at most
//! [`MAX_CONNECTIONS`] at once (a browser needs a handful), the oldest
//! connection that has sent no request yet dropped to make room for a new
//! one, a connection that sends no whole request header within
//! [`HEADER_READ_TIMEOUT`] dropped, and a pause, not a spin, after a failed
//! `accept` (out of descriptors, say).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::messages::printable;

/// What the login we started expects to see.
#[derive(Debug)]
pub struct Expected {
    pub path: String,
    pub state: String,
    pub issuer: String,
    /// RFC 9207: the provider said it always sends `iss`.
    pub iss_required: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    #[error("the provider refused the login: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("the login response came from issuer {found:?}, not {expected:?} (RFC 9207 mix-up defence); the code was not used")]
    IssuerMismatch { found: String, expected: String },
    #[error("the provider advertises RFC 9207 issuer identification but its login response has no iss; the code was not used")]
    IssuerMissing,
    #[error("the login response has neither a code nor an error")]
    NoCode,
}

/// The authorization code from a successful login response.
pub struct Code(pub openidconnect::AuthorizationCode);

pub struct CallbackListener {
    listener: TcpListener,
    pub local_addr: SocketAddr,
}

impl CallbackListener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<CallbackListener> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(CallbackListener {
            listener,
            local_addr,
        })
    }

    pub fn redirect_uri(&self, path: &str) -> String {
        format!("http://{}{}", self.local_addr, path)
    }

    /// Serves until a response with the right `state` arrives. The caller
    /// bounds the wait with its own timeout.
    pub async fn wait(self, expected: Arc<Expected>) -> Result<Code, CallbackError> {
        let (tx, mut rx) = mpsc::channel::<Result<Code, CallbackError>>(1);
        let mut connections = Connections::default();
        loop {
            tokio::select! {
                outcome = rx.recv() => {
                    // The sender lives in this loop, so recv never yields None.
                    if let Some(outcome) = outcome {
                        return outcome;
                    }
                }
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        // Out of descriptors, most likely: trying again at
                        // once would only spin. Connections that time out
                        // meanwhile give some back.
                        Err(_) => {
                            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                            continue;
                        }
                    };
                    connections.make_room();
                    let requested = Arc::new(AtomicBool::new(false));
                    let task = tokio::spawn(serve(
                        stream,
                        Arc::clone(&expected),
                        tx.clone(),
                        Arc::clone(&requested),
                    ));
                    connections.add(requested, task.abort_handle());
                }
            }
        }
    }
}

/// Connections served at once; a browser opens a few (the page, a
/// favicon, a speculative one).
pub const MAX_CONNECTIONS: usize = 32;

/// A connection must send a whole request header within this; an idle or
/// trickling one is dropped.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest any one connection is served.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// After a failed `accept`.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The connections being served, oldest first.
#[derive(Default)]
struct Connections {
    live: VecDeque<Connection>,
}

struct Connection {
    /// Set once a whole request header has arrived.
    requested: Arc<AtomicBool>,
    task: AbortHandle,
}

impl Connections {
    /// Forgets finished connections, then, at the cap, drops the oldest one
    /// that has not sent a request yet (else the oldest of all): a new
    /// connection, maybe the browser's, always gets in.
    fn make_room(&mut self) {
        self.live.retain(|c| !c.task.is_finished());
        while self.live.len() >= MAX_CONNECTIONS {
            let victim = self
                .live
                .iter()
                .position(|c| !c.requested.load(Ordering::SeqCst))
                .unwrap_or(0);
            if let Some(connection) = self.live.remove(victim) {
                connection.task.abort();
            }
        }
    }

    fn add(&mut self, requested: Arc<AtomicBool>, task: AbortHandle) {
        self.live.push_back(Connection { requested, task });
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        for connection in &self.live {
            connection.task.abort();
        }
    }
}

/// One connection: requests answered until it closes, times out or is
/// dropped to make room.
async fn serve(
    stream: TcpStream,
    expected: Arc<Expected>,
    tx: mpsc::Sender<Result<Code, CallbackError>>,
    requested: Arc<AtomicBool>,
) {
    let service = hyper::service::service_fn(move |request| {
        requested.store(true, Ordering::SeqCst);
        let outcome = answer(&request, &expected);
        let tx = tx.clone();
        async move {
            let (status, page, result) = outcome;
            if let Some(result) = result {
                let _ = tx.try_send(result);
            }
            Ok::<_, Infallible>(html(status, page))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
}

type Answer = (StatusCode, String, Option<Result<Code, CallbackError>>);

fn answer(request: &hyper::Request<Incoming>, expected: &Expected) -> Answer {
    if request.method() != Method::GET || request.uri().path() != expected.path {
        return (
            StatusCode::NOT_FOUND,
            page("Not found", "Nothing here."),
            None,
        );
    }
    let params = query_params(request.uri().query().unwrap_or(""));
    match judge(&params, expected) {
        Verdict::NotThisLogin => (
            StatusCode::BAD_REQUEST,
            page(
                "Not this login",
                "This response does not belong to the login in progress (its state is missing or wrong), so it was ignored. Finish the login in the window authplug opened.",
            ),
            None,
        ),
        Verdict::Code(code) => (
            StatusCode::OK,
            page(
                "Logged in",
                "You are logged in. You can close this window and return to the terminal.",
            ),
            Some(Ok(code)),
        ),
        Verdict::Failed(failure) => {
            // A refusal is the provider's answer, delivered as it should be.
            let status = match failure {
                CallbackError::Provider { .. } => StatusCode::OK,
                _ => StatusCode::BAD_REQUEST,
            };
            let body = failure.to_string();
            (status, page("Login failed", &body), Some(Err(failure)))
        }
    }
}

/// A query string's parameters (the last of a repeated name wins).
pub fn query_params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// What a login response says.
pub enum Verdict {
    /// Its `state` is missing or wrong: not the login in progress (anything
    /// on this machine can call the listener), so it is ignored.
    NotThisLogin,
    Code(Code),
    /// The login in progress ends with this error.
    Failed(CallbackError),
}

/// Judges a login response's parameters by the same rules wherever they
/// come from, the listener or an address pasted on the terminal: the
/// `state` first, then the provider's error, then RFC 9207's `iss`, then
/// the code.
pub fn judge(params: &HashMap<String, String>, expected: &Expected) -> Verdict {
    if params.get("state").map(String::as_str) != Some(expected.state.as_str()) {
        return Verdict::NotThisLogin;
    }
    if let Some(error) = params.get("error") {
        return Verdict::Failed(CallbackError::Provider {
            error: printable(error),
            description: params.get("error_description").map(|d| printable(d)),
        });
    }
    if let Some(failure) = issuer_problem(params.get("iss"), expected) {
        return Verdict::Failed(failure);
    }
    match params.get("code") {
        Some(code) if !code.is_empty() => {
            Verdict::Code(Code(openidconnect::AuthorizationCode::new(code.clone())))
        }
        _ => Verdict::Failed(CallbackError::NoCode),
    }
}

/// RFC 9207: a response that names an issuer must name ours, and one from a
/// provider that said it always names itself must.
pub fn issuer_problem(iss: Option<&String>, expected: &Expected) -> Option<CallbackError> {
    match iss {
        Some(iss) if iss != &expected.issuer => Some(CallbackError::IssuerMismatch {
            found: printable(iss),
            expected: expected.issuer.clone(),
        }),
        None if expected.iss_required => Some(CallbackError::IssuerMissing),
        _ => None,
    }
}

fn page(title: &str, message: &str) -> String {
    let title = html_escape::encode_text(title);
    let message = html_escape::encode_text(message);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
         <h1>{title}</h1><p>{message}</p><p><small>authplug-oidc</small></p></body></html>"
    )
}

fn html(status: StatusCode, body: String) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}
