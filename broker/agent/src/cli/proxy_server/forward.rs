//! One request through the proxy: admitted ([`Local::admit`]), sent to the
//! upstream with the token by [`Broker::send_with`] (which heals a 401),
//! and the answer streamed back as it comes.

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, AUTHORIZATION, CONTENT_LENGTH, HOST};
use hyper::{Request, Response, StatusCode};

use super::listen::{Local, Refusal};
use super::{Proxy, REPLAY_LIMIT};
use authplug_broker::HttpError;

/// What the proxy answers with: a stream of bytes.
pub(super) type Body = BoxBody<Bytes, std::io::Error>;

impl Proxy {
    pub(super) async fn handle(&self, local: &Local, request: Request<Incoming>) -> Response<Body> {
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let rest = match local.admit(request.uri().path(), host.as_deref()) {
            Ok(rest) => rest.to_owned(),
            Err(Refusal::Secret) => {
                return plain(
                    StatusCode::FORBIDDEN,
                    "authplug proxy: this proxy's URL (with its secret) is needed",
                )
            }
            Err(Refusal::Host) => {
                return plain(
                    StatusCode::MISDIRECTED_REQUEST,
                    "authplug proxy: the Host must be this proxy's loopback address",
                )
            }
        };
        let Some(url) = self.upstream_url(&rest, request.uri().query()) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "authplug proxy: a path with `.` or `..` segments is not forwarded",
            );
        };
        let (parts, body) = request.into_parts();
        let mut builder = self.client.request(parts.method, url);
        let connection_named = named_by_connection(&parts.headers);
        for (name, value) in &parts.headers {
            if passes(name)
                && !connection_named.contains(name)
                && name != HOST
                && name != AUTHORIZATION
                && name != CONTENT_LENGTH
            {
                builder = builder.header(name, value);
            }
        }
        let body = match request_body(body).await {
            Ok(body) => body,
            Err(error) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    &format!("authplug proxy: the request's body could not be read: {error}"),
                )
            }
        };
        let started = std::time::Instant::now();
        match self
            .broker
            .send_with(builder.body(body), self.token_request.clone())
            .await
        {
            Ok(response) => {
                tracing::info!(
                    status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "forwarded"
                );
                streamed(response)
            }
            Err(HttpError::Token(error)) => {
                tracing::warn!(%error, "no token");
                plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("authplug proxy: no token for the upstream: {error}"),
                )
            }
            Err(error) => {
                tracing::warn!(%error, "the upstream request failed");
                plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("authplug proxy: the upstream request failed: {error}"),
                )
            }
        }
    }

    /// The upstream's URL with `rest` of the path appended (nothing, or
    /// `/`: the upstream URL itself) and the request's query after the
    /// upstream's own. `None` for a path with dot segments, which URL
    /// parsing would resolve out of the upstream's base path.
    fn upstream_url(&self, rest: &str, query: Option<&str>) -> Option<url::Url> {
        let mut url = self.upstream.clone();
        let rest = rest.trim_start_matches('/');
        if rest.split('/').any(is_dot_segment) {
            return None;
        }
        if !rest.is_empty() {
            let base = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base}/{rest}"));
        }
        let query = match (self.upstream.query(), query) {
            (Some(own), Some(asked)) => Some(format!("{own}&{asked}")),
            (own, asked) => own.or(asked).map(str::to_owned),
        };
        url.set_query(query.as_deref());
        Some(url)
    }
}

/// The request's body: whole if it fits in [`REPLAY_LIMIT`] (so a 401 can
/// be healed by sending it again), else streamed.
async fn request_body(mut body: Incoming) -> Result<reqwest::Body, hyper::Error> {
    let mut kept = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        kept.extend_from_slice(&data);
        if kept.len() > REPLAY_LIMIT {
            let head =
                futures_util::stream::once(async move { Ok::<_, hyper::Error>(kept.freeze()) });
            let tail = BodyStream::new(body)
                .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
            return Ok(reqwest::Body::wrap_stream(head.chain(tail)));
        }
    }
    Ok(reqwest::Body::from(kept.freeze()))
}

/// The upstream's answer, its body passed on chunk by chunk.
fn streamed(response: reqwest::Response) -> Response<Body> {
    let mut answer = Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if passes(name) {
            answer = answer.header(name, value);
        }
    }
    let body = StreamBody::new(
        response
            .bytes_stream()
            .map_ok(Frame::data)
            .map_err(std::io::Error::other),
    );
    answer.body(BoxBody::new(body)).unwrap_or_else(|_| {
        plain(
            StatusCode::BAD_GATEWAY,
            "authplug proxy: an unusable answer",
        )
    })
}

/// `.` or `..`, spelled plainly or percent-encoded (URL parsing takes
/// `%2e` for a dot in a path).
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

/// The headers a request's `Connection` names: hop-by-hop too (RFC 9110
/// §7.6.1).
fn named_by_connection(headers: &hyper::HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// Not a hop-by-hop header (RFC 9110 §7.6.1): those are each connection's.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // A refused or failed request ends its connection: a local user
    // without the secret cannot hold connections open with cheap requests.
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}
