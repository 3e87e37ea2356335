//! `authplug proxy`: a loopback reverse proxy that adds a token to every
//! request to one upstream (an MCP server, any HTTP API) and heals a 401.
//!
//! Built on an embedded [`Broker`], the library any daemon embeds: each
//! request goes through [`Broker::send_with`], which adds
//! `Authorization: Bearer`, and on a 401 rejects that token
//! (compare-and-clear), gets a fresh one and sends the request once more.
//! A request body up to [`REPLAY_LIMIT`] is kept for that; a larger one is
//! streamed and its 401 goes back to the client (the token is rejected all
//! the same, so the client's retry gets a fresh one). Responses are
//! streamed as they come: server-sent events and long-lived responses
//! (MCP's streamable HTTP) are never held back.
//!
//! The broker's plugin is `authplug token --profile P` (the agent's login,
//! shared with kubectl, git and every other client) or any plugin command.
//!
//! Who may use it ([`listen`]): on a unix socket, only its owner (mode
//! 0600, each peer's uid checked); on loopback TCP, any local user could
//! connect, so a request must name a random per-proxy secret as its first
//! path segment, and its `Host` must be the loopback address (a web page
//! the user visits cannot reach it by DNS rebinding). Neither tokens nor
//! bodies are logged.
//!
//! What it is not: a forward proxy, or a general gateway (one upstream;
//! no caching; no rewriting of bodies).

mod forward;
pub mod listen;

use std::sync::Arc;
use std::time::Duration;

use authplug_broker::{Broker, TokenRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

pub use listen::Listener;

/// Request bodies up to this size are kept to be sent again after a 401
/// (an MCP message is far smaller); larger ones are streamed.
pub const REPLAY_LIMIT: usize = 1024 * 1024;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// After a shutdown signal, requests under way get this long to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A proxy to one upstream.
pub struct Proxy {
    /// Where requests go: the upstream's base URL.
    pub upstream: url::Url,
    /// Gets and rejects the tokens.
    pub broker: Broker,
    /// How each token is asked for (interactive or not).
    pub token_request: TokenRequest,
    /// The client for the upstream.
    pub client: reqwest::Client,
}

impl Proxy {
    /// Serves `listener` until `shutdown` resolves, then lets the requests
    /// under way finish (up to [`SHUTDOWN_GRACE`]).
    pub async fn serve(
        self,
        listener: Listener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let proxy = Arc::new(self);
        let seats = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let local = Arc::new(listener.local());
        tokio::pin!(shutdown);
        loop {
            let seat = tokio::select! {
                () = &mut shutdown => break,
                seat = Arc::clone(&seats).acquire_owned() => seat,
            };
            let Ok(seat) = seat else { break };
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let service = {
                let proxy = Arc::clone(&proxy);
                let local = Arc::clone(&local);
                hyper::service::service_fn(move |request| {
                    let proxy = Arc::clone(&proxy);
                    let local = Arc::clone(&local);
                    async move { Ok::<_, std::convert::Infallible>(proxy.handle(&local, request).await) }
                })
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _ = connection.await;
                drop(seat);
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still under way after the grace: stopped");
        }
        Ok(())
    }
}
