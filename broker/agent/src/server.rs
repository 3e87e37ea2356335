//! The agent daemon: a unix socket (0600, peers' uid checked), one broker per
//! profile, JSON lines.
//!
//! One local process must not be able to make it unavailable: at most
//! [`MAX_CONNECTIONS`] are served at once (at the cap, the oldest connection
//! waiting for a request is dropped for a new one), a connection that sends
//! no whole request within [`IDLE_TIMEOUT`] is dropped, and the bytes of
//! unfinished request lines across all connections are bounded by
//! [`MAX_BUFFERED`] (a line is at most [`MAX_LINE`] on its own).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use zeroize::{Zeroize, Zeroizing};

use crate::config::Profiles;
use crate::consumers::Consumers;
use crate::paths;
use crate::reload::LiveProfiles;
use crate::wire::{
    ErrorKind, Op, ProfileStatus, Request, Response, Version, WireToken, MAX_LINE, WIRE_VERSION,
};
use authplug_broker::{Broker, BrokerError, LogoutOutcome, TokenRequest};

/// The exit code of `authplug agent` when another process holds the
/// socket's lock: an autostarting client then waits for that agent, or
/// starts again once the lock is free and nobody listens (it was held by a
/// probe, or by an agent that died before it listened).
pub const EXIT_ALREADY_RUNNING: i32 = 75;

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

/// Who is connected, oldest first, and the bytes their unfinished request
/// lines hold.
#[derive(Default)]
struct Admission {
    connections: Mutex<VecDeque<Connection>>,
    buffered: AtomicUsize,
}

struct Connection {
    /// Set while the connection waits for a request (it has none under way).
    waiting: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl Admission {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Connection>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more: at the cap, the oldest connection that is waiting
    /// for a request is dropped. `None` if every one is in the middle of a
    /// request (a run of a plugin that many wait for): the new one is
    /// refused rather than a waiter cut off.
    fn make_room(&self) -> Option<Arc<AtomicBool>> {
        let mut connections = self.lock();
        connections.retain(|c| !c.task.is_finished());
        if connections.len() >= MAX_CONNECTIONS {
            let idle = connections
                .iter()
                .position(|c| c.waiting.load(Ordering::SeqCst))?;
            if let Some(dropped) = connections.remove(idle) {
                dropped.task.abort();
                tracing::debug!("dropped the oldest idle connection for a new one");
            }
        }
        Some(Arc::new(AtomicBool::new(true)))
    }

    fn add(&self, waiting: Arc<AtomicBool>, task: tokio::task::AbortHandle) {
        self.lock().push_back(Connection { waiting, task });
    }
}

/// One connection's seat in the [`Admission`]: whether it waits for a
/// request, and the bytes its unfinished line holds (given back on drop,
/// also when the task is aborted).
struct Seat {
    admission: Arc<Admission>,
    waiting: Arc<AtomicBool>,
    holding: usize,
}

impl Seat {
    fn new(admission: Arc<Admission>, waiting: Arc<AtomicBool>) -> Seat {
        Seat {
            admission,
            waiting,
            holding: 0,
        }
    }

    fn waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }

    /// Takes `more` bytes from the budget; `false` if that would pass it.
    fn hold(&mut self, more: usize) -> bool {
        let before = self.admission.buffered.fetch_add(more, Ordering::SeqCst);
        if before + more > MAX_BUFFERED {
            self.admission.buffered.fetch_sub(more, Ordering::SeqCst);
            return false;
        }
        self.holding += more;
        true
    }

    fn release(&mut self) {
        self.admission
            .buffered
            .fetch_sub(self.holding, Ordering::SeqCst);
        self.holding = 0;
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every connection is busy with a request: say so and close.
async fn refuse_busy(stream: UnixStream) {
    let (_, mut writer) = stream.into_split();
    let refusal = Response::error(
        ErrorKind::Busy,
        format!("the agent is serving {MAX_CONNECTIONS} requests already; try again in a moment"),
    );
    let _ = send(&mut writer, &refusal).await;
}

async fn connection(
    stream: UnixStream,
    uid: u32,
    served: Arc<Served>,
    stop: Arc<watch::Sender<bool>>,
    mut seat: Seat,
) -> io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read_half, mut writer) = stream.into_split();
    if peer.uid() != uid {
        tracing::warn!(peer_uid = peer.uid(), peer_pid = ?peer.pid(), "refused a client of another user");
        let refusal = Response::error(
            ErrorKind::Forbidden,
            format!(
                "refused: this agent serves uid {uid} only, and you are uid {}",
                peer.uid()
            ),
        );
        send(&mut writer, &refusal).await?;
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let mut line = Zeroizing::new(Vec::new());
    loop {
        line.clear();
        seat.release();
        seat.waiting(true);
        let read = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, &mut line, &mut seat));
        let read = match read.await {
            Ok(read) => read?,
            Err(_) => Line::Idle,
        };
        seat.waiting(false);
        match read {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                let error = Response::error(
                    ErrorKind::BadRequest,
                    format!("request line longer than {MAX_LINE} bytes; closing the connection"),
                );
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Idle => {
                let error = Response::error(
                    ErrorKind::BadRequest,
                    format!(
                        "no whole request line within {} seconds; closing the connection",
                        IDLE_TIMEOUT.as_secs()
                    ),
                );
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Busy => {
                let error = Response::error(
                    ErrorKind::Busy,
                    "the agent holds too much unfinished input from its clients; closing this \
                     connection, try again in a moment",
                );
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Complete => {}
        }
        // Parsed below; the budget is for unfinished lines.
        seat.release();
        let malformed = |error: serde_json::Error| {
            Response::error(ErrorKind::BadRequest, format!(
                "malformed request ({error}): send one JSON object per line, like {{\"v\":{WIRE_VERSION},\"op\":\"token\"}}"
            ))
        };
        // The version decides before anything else does: a request of
        // another version is told so even if the rest makes no sense here
        // (an op added later). Parsing `v` alone only when the whole
        // request fails keeps the common case to one parse.
        let parsed = match serde_json::from_slice::<Request>(&line) {
            Ok(request) if request.v == WIRE_VERSION => Ok(request),
            Ok(request) => Err(Refusal::OtherVersion(request.v)),
            Err(error) => Err(match serde_json::from_slice::<Version>(&line) {
                Ok(Version { v }) if v != WIRE_VERSION => Refusal::OtherVersion(v),
                _ => Refusal::Malformed(error),
            }),
        };
        line.zeroize();
        let request = match parsed {
            Ok(request) => request,
            Err(Refusal::OtherVersion(v)) => {
                send(
                    &mut writer,
                    &Response::error(ErrorKind::OtherVersion, other_version(v)),
                )
                .await?;
                continue;
            }
            Err(Refusal::Malformed(error)) => {
                send(&mut writer, &malformed(error)).await?;
                continue;
            }
        };
        tracing::debug!(op = ?request.op, "request");
        let profiles = match &request.op {
            Op::Token { profile, .. }
            | Op::Reject { profile, .. }
            | Op::RejectCurrent { profile, .. }
            | Op::Logout { profile } => served.profiles.for_profile(profile.as_deref()),
            _ => served.profiles.current(),
        };
        match request.op {
            Op::Token {
                profile,
                interactive,
                force,
                consumer,
                keep_running,
            } => {
                let ask = Ask {
                    profile: profile.as_deref(),
                    interactive,
                    force,
                    consumer: consumer.as_deref(),
                    keep_running,
                };
                let outcome =
                    token(&profiles, &served.consumers, ask, &mut reader, &mut writer).await?;
                if outcome == Outcome::ClientGone {
                    return Ok(());
                }
            }
            Op::Reject {
                challenge: Some(challenge),
                ..
            }
            | Op::RejectCurrent {
                challenge: Some(challenge),
                ..
            } if !authplug_protocol::challenge::usable(&challenge) => {
                let refusal = Response::error(ErrorKind::BadRequest, format!(
                    "the challenge is not a usable WWW-Authenticate value (at most {} bytes of visible ASCII and spaces)",
                    authplug_protocol::challenge::CHALLENGE_LIMIT
                ));
                send(&mut writer, &refusal).await?;
            }
            Op::Reject {
                profile,
                mut token,
                challenge,
            } => {
                // Moved out, not copied: what is left to wipe is empty.
                let token = authplug_broker::Token::from(std::mem::take(token.expose_secret_mut()));
                let response = match profiles.get(profile.as_deref()) {
                    Ok((_, broker)) => {
                        let mut response = Response::ok();
                        response.cleared =
                            Some(broker.reject_challenged(&token, challenge.as_deref()));
                        response
                    }
                    Err(error) => Response::error(ErrorKind::UnknownProfile, error.to_string()),
                };
                send(&mut writer, &response).await?;
            }
            Op::RejectCurrent { profile, challenge } => {
                let response = match profiles.get(profile.as_deref()) {
                    Ok((_, broker)) => {
                        let mut response = Response::ok();
                        response.cleared =
                            Some(broker.reject_current_challenged(challenge.as_deref()));
                        response
                    }
                    Err(error) => Response::error(ErrorKind::UnknownProfile, error.to_string()),
                };
                send(&mut writer, &response).await?;
            }
            Op::Logout { profile } => {
                let response = match profiles.get(profile.as_deref()) {
                    Ok((name, broker)) => {
                        let name = name.to_owned();
                        let response = logout(broker.clone(), &mut writer).await?;
                        // The logins built on this one end with it, after
                        // it: none can trade its token meanwhile.
                        for above in profiles.built_on(&name) {
                            let Ok((_, broker)) = profiles.get(Some(&above)) else {
                                continue;
                            };
                            let ended = logout(broker.clone(), &mut writer).await?;
                            if ended.logged_out == Some(true) {
                                let mut note = format!(
                                    "logged out `{above}` too: its login was built on `{name}`'s"
                                );
                                if let Some(error) = &ended.cleanup_error {
                                    note.push_str(&format!(
                                        " (its plugin could not clean up: {error})"
                                    ));
                                }
                                send(&mut writer, &Response::progress(&note)).await?;
                            }
                        }
                        response
                    }
                    Err(error) => Response::error(ErrorKind::UnknownProfile, error.to_string()),
                };
                send(&mut writer, &response).await?;
            }
            Op::Status => {
                let default = profiles.default_name();
                let mut response = Response::ok();
                response.profiles = Some(
                    profiles
                        .iter()
                        .map(|(name, broker)| {
                            ProfileStatus::new(name, Some(name) == default, &broker.status())
                        })
                        .collect(),
                );
                send(&mut writer, &response).await?;
            }
            Op::Stop => {
                send(&mut writer, &Response::ok()).await?;
                tracing::info!("stop requested by a client");
                stop.send_replace(true);
                return Ok(());
            }
        }
    }
}

enum Refusal {
    OtherVersion(u32),
    Malformed(serde_json::Error),
}

fn other_version(v: u32) -> String {
    format!(
        "this agent speaks protocol version {WIRE_VERSION}, not {v}: restart it with the same authplug version as the client (`authplug stop`)"
    )
}

/// Logs a profile out, streaming the plugin's stderr (what it revoked) to
/// the client; returns the final answer. The logout runs in a task of its
/// own, so a client that hangs up cannot stop it half-way.
async fn logout(broker: Broker, writer: &mut OwnedWriteHalf) -> io::Result<Response> {
    let (lines_sender, mut lines) = mpsc::channel::<String>(PROGRESS_QUEUE);
    let sink: authplug_protocol::host::StderrSink = Arc::new(move |line: &str| {
        let _ = lines_sender.try_send(line.to_owned());
    });
    let mut done = tokio::spawn(async move { broker.logout(Some(sink)).await });
    let outcome = loop {
        tokio::select! {
            outcome = &mut done => break outcome,
            Some(line) = lines.recv() => send(writer, &Response::progress(&line)).await?,
        }
    };
    while let Ok(line) = lines.try_recv() {
        send(writer, &Response::progress(&line)).await?;
    }
    let mut response = Response::ok();
    match outcome {
        Ok(LogoutOutcome::NothingHeld) => response.logged_out = Some(false),
        Ok(LogoutOutcome::CleanedUp) => response.logged_out = Some(true),
        Ok(LogoutOutcome::CleanupFailed(error)) => {
            response.logged_out = Some(true);
            response.cleanup_error = Some(error.summary());
        }
        // Non-exhaustive; and a panicked task still took the login.
        Ok(_) | Err(_) => response.logged_out = Some(true),
    }
    Ok(response)
}

/// One `token` request, as asked.
struct Ask<'a> {
    profile: Option<&'a str>,
    interactive: bool,
    force: bool,
    consumer: Option<&'a str>,
    keep_running: bool,
}

#[derive(PartialEq, Eq)]
enum Outcome {
    Answered,
    ClientGone,
}

/// Gets a token, streaming the plugin's stderr lines to the client while it
/// waits. A client that hangs up stops waiting, which cancels the run if it
/// was the last one waiting.
async fn token(
    profiles: &Profiles,
    consumers: &Consumers,
    ask: Ask<'_>,
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
) -> io::Result<Outcome> {
    let Ask {
        profile,
        interactive,
        force,
        consumer,
        keep_running,
    } = ask;
    let (name, broker) = match profiles.get(profile) {
        Ok(found) => found,
        Err(message) => {
            send(
                writer,
                &Response::error(ErrorKind::UnknownProfile, message.to_string()),
            )
            .await?;
            return Ok(Outcome::Answered);
        }
    };
    // A consumer asking again holds a token that failed it or expired.
    if let Some(consumer) = consumer {
        if let Some(held) = consumers.last_served(name, consumer) {
            if broker.reject(&held) {
                tracing::info!(
                    profile = name,
                    consumer,
                    "a consumer asked again for the token it was given: taken as refused"
                );
            }
        }
    }
    // Bounded: a chatty plugin and a client that reads slowly must not
    // grow the agent without end, nor hold up the run. Lines that do not
    // fit are dropped and counted, and the client is told how many.
    let (lines_sender, mut lines) = mpsc::channel::<String>(PROGRESS_QUEUE);
    let dropped = Arc::new(AtomicUsize::new(0));
    let request = TokenRequest::new()
        .interactive(interactive)
        .force(force)
        .keep_running(keep_running)
        .on_stderr({
            let dropped = dropped.clone();
            move |line| {
                // Called under the broker's lock, so one call at a time.
                let missed = dropped.load(Ordering::Relaxed);
                if missed > 0 {
                    if lines_sender.try_send(dropped_note(missed)).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    dropped.store(0, Ordering::Relaxed);
                }
                if lines_sender.try_send(line.to_owned()).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    let pending = broker.get(request);
    tokio::pin!(pending);
    let mut streamed = false;
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut watch_reads = true;
    // Set once the client's input has ended.
    let mut hangup_check: Option<tokio::time::Interval> = None;
    let result = loop {
        tokio::select! {
            result = &mut pending => break result,
            Some(line) = lines.recv() => {
                streamed = true;
                send(writer, &Response::progress(&line)).await?
            }
            read = reader.fill_buf(), if watch_reads => match read {
                Err(_) => return Ok(Outcome::ClientGone),
                // End of input: the client hung up, or only shut down its
                // write side (`printf ... | nc -U`) and still waits for
                // the answer. Only the former cancels.
                Ok([]) => {
                    watch_reads = false;
                    if hung_up(writer) {
                        return Ok(Outcome::ClientGone);
                    }
                    hangup_check = Some(tokio::time::interval(HANGUP_CHECK));
                }
                // The client sent its next request already (it stays in the
                // buffer for later). It may still hang up before this answer:
                // watched for like a client that shut down its write side.
                Ok(_) => {
                    watch_reads = false;
                    if hung_up(writer) {
                        return Ok(Outcome::ClientGone);
                    }
                    hangup_check = Some(tokio::time::interval(HANGUP_CHECK));
                }
            },
            _ = heartbeat.tick() => send(writer, &Response::waiting()).await?,
            () = tick(&mut hangup_check), if hangup_check.is_some() => {
                if hung_up(writer) {
                    return Ok(Outcome::ClientGone);
                }
            }
        }
    };
    while let Ok(line) = lines.try_recv() {
        streamed = true;
        send(writer, &Response::progress(&line)).await?;
    }
    let missed = dropped.swap(0, Ordering::Relaxed);
    if missed > 0 {
        send(writer, &Response::progress(&dropped_note(missed))).await?;
    }
    if let (Some(consumer), Ok(issued)) = (consumer, &result) {
        consumers.served(name, consumer, issued.token.clone());
    }
    let response = match result {
        Ok(issued) => match issued.token.to_str() {
            Ok(text) => {
                let mut response = Response::ok();
                response.token = Some(WireToken::new(text.to_owned()));
                response.expires_at = issued.expires_at.map(crate::wire::unix_seconds);
                response
            }
            Err(_) => Response::error(ErrorKind::UnusableToken,
                "the plugin's token is not UTF-8 text and cannot be passed through the agent; use the broker library directly",
            ),
        },
        Err(error) => Response::error(error.kind().into(), in_the_users_words(&error, streamed)),
    };
    send(writer, &response).await?;
    Ok(Outcome::Answered)
}

/// A broker's error as the user of `authplug` should read it: the library's
/// hint (`TokenRequest::force`) becomes the command's (`--force`). The
/// client has shown the plugin's stderr as it came (`streamed`): then the
/// error need not repeat it as "its last words".
fn in_the_users_words(error: &BrokerError, streamed: bool) -> String {
    let plain = |error: &BrokerError| {
        if streamed {
            error.summary()
        } else {
            error.to_string()
        }
    };
    match error {
        BrokerError::CoolingDown { remaining, error } => format!(
            "{}\nAn interactive login was not tried: after a failed one they are refused for the rest of the cool-down ({}s); to start one anyway, run `authplug token --force`",
            plain(error),
            remaining.as_secs().max(1)
        ),
        other => plain(other),
    }
}

/// How often a client that shut down its write side is checked for having
/// gone altogether.
const HANGUP_CHECK: Duration = Duration::from_millis(100);

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Whether the peer has closed its socket (not just its write side: that
/// reads as end of input, while a full close also sets POLLHUP here).
fn hung_up(writer: &OwnedWriteHalf) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stream: &UnixStream = writer.as_ref();
    // No events asked for: poll still reports hang-up and error.
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => false,
    }
}

/// Progress lines waiting for a slow client, at most (each line is at most
/// 4 KiB, so 1 MiB per client).
const PROGRESS_QUEUE: usize = 256;

fn dropped_note(count: usize) -> String {
    if count == 1 {
        "[1 line dropped]".to_owned()
    } else {
        format!("[{count} lines dropped]")
    }
}

enum Line {
    Complete,
    Eof,
    TooLong,
    /// No whole line within [`IDLE_TIMEOUT`].
    Idle,
    /// The agent-wide budget for unfinished lines ([`MAX_BUFFERED`]) is spent.
    Busy,
}

/// Reads one line (without its newline) into `line`, at most [`MAX_LINE`]
/// bytes, each taken from the agent-wide budget first. A last line without
/// a newline counts.
async fn read_line(
    reader: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
    seat: &mut Seat,
) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (chunk, found) = match memchr(available) {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        if line.len() + chunk.len() >= MAX_LINE {
            return Ok(Line::TooLong);
        }
        if !seat.hold(chunk.len()) {
            return Ok(Line::Busy);
        }
        line.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(found);
        reader.consume(used);
        if found {
            return Ok(Line::Complete);
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

async fn send(writer: &mut OwnedWriteHalf, response: &Response) -> io::Result<()> {
    let mut bytes = Zeroizing::new(serde_json::to_vec(response).map_err(io::Error::other)?);
    bytes.push(b'\n');
    writer.write_all(&bytes).await
}

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
