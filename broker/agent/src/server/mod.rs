//! The agent daemon: a unix socket (0600, peers' uid checked), one broker per
//! profile, JSON lines.
//!
//! One local process must not be able to make it unavailable: at most
//! [`MAX_CONNECTIONS`] are served at once (at the cap, the oldest connection
//! waiting for a request is dropped for a new one), a connection that sends
//! no whole request within [`IDLE_TIMEOUT`] is dropped, and the bytes of
//! unfinished request lines across all connections are bounded by
//! [`MAX_BUFFERED`] (a line is at most [`MAX_LINE`] on its own).

mod admission;
mod connection;
mod lines;
mod logout;
mod token;

use admission::{refuse_busy, Admission, Seat};
use connection::connection;

use std::future::Future;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::consumers::Consumers;
use crate::paths;
use crate::reload::LiveProfiles;

/// The exit code of `authplug agent` when another process holds the
/// socket's lock: an autostarting client then waits for that agent, or
/// starts again once the lock is free and nobody listens (it was held by a
/// probe, or by an agent that died before it listened).
pub const EXIT_ALREADY_RUNNING: i32 = 75;

/// Consumers remembered per profile (AGENT-PROTOCOL.md, limits).
pub use crate::consumers::MAX_CONSUMERS;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("another agent is already running on {0} (stop it with `authplug stop`)")]
    /// Another agent holds the socket's lock.
    AlreadyRunning(PathBuf),
    #[error("cannot set up the agent's socket {path}: {source}")]
    /// The socket or its directory could not be set up.
    Socket {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// A bound agent, ready to [`Agent::serve`].
pub struct Agent {
    listener: UnixListener,
    socket: PathBuf,
    /// Bound by the agent (removed on exit), not passed by a supervisor.
    owns_socket: bool,
    served: Arc<Served>,
    // Held for the agent's life: a second agent on the same socket fails to
    // take it.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Agent {
    /// Creates the socket's directory (see [`paths::socket_dir`]), takes the agent lock,
    /// replaces a stale socket and listens (0600).
    pub fn bind(socket: &Path, profiles: impl Into<LiveProfiles>) -> Result<Agent, AgentError> {
        let fail = |source: io::Error| AgentError::Socket {
            path: socket.to_owned(),
            source,
        };
        let dir = socket
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        paths::socket_dir(dir).map_err(fail)?;
        let lock = take_lock(socket)?;
        // We hold the lock, so a socket file left here is stale.
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(fail(error)),
        }
        let listener = UnixListener::bind(socket).map_err(fail)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        Ok(Agent::new(listener, socket, true, profiles.into(), lock))
    }

    fn new(
        listener: UnixListener,
        socket: &Path,
        owns_socket: bool,
        profiles: LiveProfiles,
        lock: nix::fcntl::Flock<std::fs::File>,
    ) -> Agent {
        Agent {
            listener,
            socket: socket.to_owned(),
            owns_socket,
            served: Arc::new(Served {
                profiles,
                consumers: Consumers::default(),
            }),
            _lock: lock,
        }
    }

    /// Serves on a socket a supervisor bound and passed
    /// ([`activation`](crate::activation)): takes the agent lock beside it,
    /// and leaves the socket where it is on exit (the supervisor owns it,
    /// and starts the agent again on the next connection).
    pub fn adopt(
        listener: std::os::unix::net::UnixListener,
        socket: &Path,
        profiles: impl Into<LiveProfiles>,
    ) -> Result<Agent, AgentError> {
        let lock = take_lock(socket)?;
        let listener = UnixListener::from_std(listener).map_err(|source| AgentError::Socket {
            path: socket.to_owned(),
            source,
        })?;
        Ok(Agent::new(listener, socket, false, profiles.into(), lock))
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes or a client sends `stop`; then
    /// removes the socket.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_sender, mut stop) = watch::channel(false);
        let stop_sender = Arc::new(stop_sender);
        let uid = nix::unistd::geteuid().as_raw();
        tracing::info!(socket = %self.socket.display(), profiles = self.served.profiles.current().len(), "agent listening");
        tokio::pin!(shutdown);
        let admission = Arc::new(Admission::default());
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = stop.changed() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let Some(waiting) = admission.make_room() else {
                            tracing::warn!(max = MAX_CONNECTIONS, "every connection is busy with a request; refused one");
                            tokio::spawn(refuse_busy(stream));
                            continue;
                        };
                        let served = self.served.clone();
                        let stop_sender = stop_sender.clone();
                        let seat = Seat::new(Arc::clone(&admission), Arc::clone(&waiting));
                        let task = tokio::spawn(async move {
                            if let Err(error) = connection(stream, uid, served, stop_sender, seat).await {
                                tracing::debug!(%error, "connection ended");
                            }
                        });
                        admission.add(waiting, task.abort_handle());
                    }
                    Err(error) => {
                        // Out of descriptors and the like: wait a moment
                        // rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        if self.owns_socket {
            let _ = std::fs::remove_file(&self.socket);
        }
        tracing::info!("agent stopped");
    }
}

/// What every connection serves from.
struct Served {
    profiles: LiveProfiles,
    /// The token each named consumer got last.
    consumers: Consumers,
}

/// The agent lock beside `socket`: one agent per socket.
fn take_lock(socket: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, AgentError> {
    let fail = |source: io::Error| AgentError::Socket {
        path: socket.to_owned(),
        source,
    };
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(paths::lock_file(socket))
        .map_err(fail)?;
    nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                AgentError::AlreadyRunning(socket.to_owned())
            } else {
                fail(io::Error::from(errno))
            }
        },
    )
}

/// Connections served at once. A client makes one per request, so this
/// is many more than the clients that wait at once (64 in the benchmark).
pub const MAX_CONNECTIONS: usize = 512;

/// A connection must send a whole request line within this, at first and
/// after each answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of unfinished request lines held across all connections.
pub const MAX_BUFFERED: usize = 64 * 1024 * 1024;

/// While a token request waits for its plugin, a line is sent this often
/// (`{"v":1,"waiting":true}`): a client that hears nothing for much longer
/// knows the agent is stuck, not the login slow.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Raises the soft limit on open descriptors towards the hard one: a soft
/// limit of 1024 is the usual default, and the agent serves up to
/// [`MAX_CONNECTIONS`] clients, each with a plugin's pipes. Not past
/// [`DESCRIPTOR_LIMIT`]: plugins inherit the limit, and some programs size
/// tables by it.
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let wanted = hard.min(DESCRIPTOR_LIMIT);
        if soft < wanted {
            match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                Ok(()) => tracing::debug!(from = soft, to = wanted, "raised the descriptor limit"),
                Err(errno) => tracing::warn!(%errno, "could not raise the descriptor limit"),
            }
        }
    }
}

/// The soft descriptor limit the agent raises itself to, hard limit allowing.
const DESCRIPTOR_LIMIT: u64 = 8192;

/// The agent's process-level loop: bind (or take the socket a supervisor
/// passed, `activated`), then serve until SIGTERM, SIGINT or a `stop`
/// request.
pub async fn run_agent(
    socket: &Path,
    profiles: LiveProfiles,
    activated: Option<std::os::unix::net::UnixListener>,
) -> Result<(), AgentError> {
    raise_descriptor_limit();
    let agent = match activated {
        Some(listener) => Agent::adopt(listener, socket, profiles)?,
        None => Agent::bind(socket, profiles)?,
    };
    let signals = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    agent.serve(signals).await;
    Ok(())
}
