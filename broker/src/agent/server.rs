//! The agent daemon: a unix socket (0600, peers' uid checked), one broker per
//! profile, JSON lines.

use std::future::Future;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use zeroize::{Zeroize, Zeroizing};

use super::config::Profiles;
use super::paths;
use super::wire::{Op, ProfileStatus, Request, Response, Version, MAX_LINE, WIRE_VERSION};
use crate::TokenRequest;

/// The exit code of `authplug agent` when another process holds the
/// socket's lock: an autostarting client then waits for that agent, or
/// starts again once the lock is free and nobody listens (it was held by a
/// probe, or by an agent that died before it listened).
pub const EXIT_ALREADY_RUNNING: i32 = 75;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("another agent is already running on {0} (stop it with `authplug stop`)")]
    AlreadyRunning(PathBuf),
    #[error("cannot set up the agent's socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
}

/// A bound agent, ready to [`Agent::serve`].
pub struct Agent {
    listener: UnixListener,
    socket: PathBuf,
    profiles: Arc<Profiles>,
    // Held for the agent's life: a second agent on the same socket fails to
    // take it.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Agent {
    /// Creates the socket's directory (see [`paths::socket_dir`]), takes the agent lock,
    /// replaces a stale socket and listens (0600).
    pub fn bind(socket: &Path, profiles: Profiles) -> Result<Agent, AgentError> {
        let fail = |source: io::Error| AgentError::Socket {
            path: socket.to_owned(),
            source,
        };
        let dir = socket
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        paths::socket_dir(dir).map_err(fail)?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(paths::lock_file(socket))
            .map_err(fail)?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| {
                if errno == nix::errno::Errno::EWOULDBLOCK {
                    AgentError::AlreadyRunning(socket.to_owned())
                } else {
                    fail(io::Error::from(errno))
                }
            })?;
        // We hold the lock, so a socket file left here is stale.
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(fail(error)),
        }
        let listener = UnixListener::bind(socket).map_err(fail)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        Ok(Agent {
            listener,
            socket: socket.to_owned(),
            profiles: Arc::new(profiles),
            _lock: lock,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes or a client sends `stop`; then
    /// removes the socket.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_sender, mut stop) = watch::channel(false);
        let stop_sender = Arc::new(stop_sender);
        let uid = nix::unistd::geteuid().as_raw();
        tracing::info!(socket = %self.socket.display(), profiles = self.profiles.len(), "agent listening");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = stop.changed() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let profiles = self.profiles.clone();
                        let stop_sender = stop_sender.clone();
                        tokio::spawn(async move {
                            if let Err(error) = connection(stream, uid, profiles, stop_sender).await {
                                tracing::debug!(%error, "connection ended");
                            }
                        });
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
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!("agent stopped");
    }
}

async fn connection(
    stream: UnixStream,
    uid: u32,
    profiles: Arc<Profiles>,
    stop: Arc<watch::Sender<bool>>,
) -> io::Result<()> {
    let peer = stream.peer_cred()?;
    let (read_half, mut writer) = stream.into_split();
    if peer.uid() != uid {
        tracing::warn!(peer_uid = peer.uid(), peer_pid = ?peer.pid(), "refused a client of another user");
        let refusal = Response::error(format!(
            "refused: this agent serves uid {uid} only, and you are uid {}",
            peer.uid()
        ));
        send(&mut writer, &refusal).await?;
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let mut line = Zeroizing::new(Vec::new());
    loop {
        line.clear();
        match read_line(&mut reader, &mut line).await? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                let error = Response::error(format!(
                    "request line longer than {MAX_LINE} bytes; closing the connection"
                ));
                send(&mut writer, &error).await?;
                return Ok(());
            }
            Line::Complete => {}
        }
        let malformed = |error: serde_json::Error| {
            Response::error(format!(
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
                send(&mut writer, &Response::error(other_version(v))).await?;
                continue;
            }
            Err(Refusal::Malformed(error)) => {
                send(&mut writer, &malformed(error)).await?;
                continue;
            }
        };
        tracing::debug!(op = ?request.op, "request");
        match request.op {
            Op::Token {
                profile,
                interactive,
                force,
            } => {
                let outcome = token(
                    &profiles,
                    profile.as_deref(),
                    interactive,
                    force,
                    &mut reader,
                    &mut writer,
                )
                .await?;
                if outcome == Served::ClientGone {
                    return Ok(());
                }
            }
            Op::Reject { profile, mut token } => {
                let token = token.take();
                let response = match profiles.get(profile.as_deref()) {
                    Ok((_, broker)) => {
                        let mut response = Response::ok();
                        response.cleared = Some(broker.reject(&token));
                        response
                    }
                    Err(message) => Response::error(message),
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

#[derive(PartialEq, Eq)]
enum Served {
    Answered,
    ClientGone,
}

/// Gets a token, streaming the plugin's stderr lines to the client while it
/// waits. A client that hangs up stops waiting, which cancels the run if it
/// was the last one waiting.
async fn token(
    profiles: &Profiles,
    profile: Option<&str>,
    interactive: bool,
    force: bool,
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
) -> io::Result<Served> {
    let broker = match profiles.get(profile) {
        Ok((_, broker)) => broker,
        Err(message) => {
            send(writer, &Response::error(message)).await?;
            return Ok(Served::Answered);
        }
    };
    // Bounded: a chatty plugin and a client that reads slowly must not
    // grow the agent without end, nor hold up the run. Lines that do not
    // fit are dropped and counted, and the client is told how many.
    let (lines_sender, mut lines) = mpsc::channel::<String>(PROGRESS_QUEUE);
    let dropped = Arc::new(AtomicUsize::new(0));
    let request = TokenRequest::new()
        .interactive(interactive)
        .force(force)
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
    let pending = broker.token_with(request);
    tokio::pin!(pending);
    let mut streamed = false;
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
                Err(_) => return Ok(Served::ClientGone),
                // End of input: the client hung up, or only shut down its
                // write side (`printf ... | nc -U`) and still waits for
                // the answer. Only the former cancels.
                Ok([]) => {
                    watch_reads = false;
                    if hung_up(writer) {
                        return Ok(Served::ClientGone);
                    }
                    hangup_check = Some(tokio::time::interval(HANGUP_CHECK));
                }
                // The client sent its next request already: it is still there.
                Ok(_) => watch_reads = false,
            },
            () = tick(&mut hangup_check), if hangup_check.is_some() => {
                if hung_up(writer) {
                    return Ok(Served::ClientGone);
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
    let response = match result {
        Ok(token) => match token.to_str() {
            Ok(text) => {
                let mut response = Response::ok();
                response.token = Some(text.to_owned());
                response
            }
            Err(_) => Response::error(
                "the plugin's token is not UTF-8 text and cannot be passed through the agent; use the broker library directly",
            ),
        },
        // The client has shown the plugin's stderr as it came: the error
        // need not repeat it as "its last words".
        Err(error) if streamed => Response::error(error.summary()),
        Err(error) => Response::error(error.to_string()),
    };
    send(writer, &response).await?;
    Ok(Served::Answered)
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
}

/// Reads one line (without its newline) into `line`, at most [`MAX_LINE`]
/// bytes. A last line without a newline counts.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>, line: &mut Vec<u8>) -> io::Result<Line> {
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

/// The agent's process-level loop: bind, then serve until SIGTERM, SIGINT
/// or a `stop` request.
pub async fn run_agent(socket: &Path, profiles: Profiles) -> Result<(), AgentError> {
    let agent = Agent::bind(socket, profiles)?;
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
