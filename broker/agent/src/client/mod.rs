//! The agent's client: blocking, so the CLI starts fast and needs no
//! runtime.

mod answers;

pub use answers::{LogoutAnswer, TokenAnswer, TokenAsk};

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::paths;
use crate::wire::{ErrorKind, Op, Request, Response, MAX_LINE, WIRE_VERSION};

/// Why a request to the agent failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("no agent is running on {0} (`authplug token` starts one, or run `authplug agent`)")]
    /// No agent listens on the socket.
    NotRunning(PathBuf),
    /// Setting up the agent to start failed.
    #[error("could not start the agent: {what}: {source}")]
    AutostartSetup {
        /// What was being done.
        what: String,
        /// What the system said.
        source: io::Error,
    },
    /// The agent started, then exited before it listened.
    #[error(
        "could not start the agent: it exited at once ({status}){}",
        log_tail(log, tail)
    )]
    AutostartDied {
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// Its last lines in the log.
        tail: Vec<String>,
    },
    /// The agent started but did not listen in time.
    #[error("could not start the agent: it did not open {} within 10 s; see its log {}", socket.display(), paths::log_file(socket).display())]
    AutostartSilent {
        /// The socket it should have opened.
        socket: PathBuf,
    },
    #[error("the agent did not answer within the time this command has")]
    /// [`Client::request_until`]'s deadline passed first; the agent may
    /// still be working on the request.
    OutOfTime,
    #[error("talking to the agent on {path} failed: {source}")]
    /// Reading from or writing to the socket failed.
    Io {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    #[error("the agent's answer is not valid ({0}); is the agent the same authplug version? Restart it with `authplug stop`")]
    /// What the agent sent makes no sense here.
    Protocol(ProtocolProblem),
    /// The agent answered with an error: its message.
    #[error("{message}")]
    Agent {
        /// The agent's words.
        message: String,
        /// What kind of failure it said it was (`None` from an older
        /// agent).
        kind: Option<ErrorKind>,
    },
    /// The agent answered `stop` but did not let go of its lock in time.
    #[error("the agent on {} said it would stop, but still holds {} after {} s; it may be stuck (see its log {}); kill it if it does not go", socket.display(), paths::lock_file(socket).display(), after.as_secs(), paths::log_file(socket).display())]
    StillRunning {
        /// Its socket.
        socket: PathBuf,
        /// How long it was given.
        after: Duration,
    },
    /// Nothing from the agent for [`ANSWER_TIMEOUT`], not even the
    /// heartbeat it sends while a plugin runs.
    #[error("the agent on {} sent nothing for {} s, not even its heartbeat: it seems stuck; see its log {}, or restart it (`authplug stop`)", path.display(), ANSWER_TIMEOUT.as_secs(), paths::log_file(path).display())]
    NoAnswer {
        /// The socket.
        path: PathBuf,
    },
}

/// What was wrong with what the agent sent (or what could not be sent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolProblem {
    /// The request could not be written as JSON.
    #[error("the request cannot be encoded: {0}")]
    Encode(serde_json::Error),
    /// An answer line is not what this version expects.
    #[error("an answer line is not JSON of this version: {0}")]
    Decode(serde_json::Error),
    /// The agent hung up before its final line.
    #[error("it closed the connection without an answer")]
    Closed,
    /// An answer line over [`MAX_LINE`].
    #[error("answer line too long")]
    LineTooLong,
    /// A success that lacks what the operation answers with.
    #[error("its answer lacks `{0}`")]
    Missing(&'static str),
}

impl ClientError {
    /// What kind of failure: the agent's own kind for its refusals; for
    /// the rest, whether the agent could be reached at all.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Agent { kind, .. } => kind.unwrap_or(ErrorKind::Unknown),
            ClientError::NotRunning(_)
            | ClientError::AutostartSetup { .. }
            | ClientError::AutostartDied { .. }
            | ClientError::AutostartSilent { .. } => ErrorKind::AgentUnreachable,
            ClientError::OutOfTime => ErrorKind::OutOfTime,
            ClientError::Io { .. }
            | ClientError::Protocol(_)
            | ClientError::StillRunning { .. }
            | ClientError::NoAnswer { .. } => ErrorKind::AgentBroken,
        }
    }
}

fn log_tail(log: &Path, tail: &[String]) -> String {
    if tail.is_empty() {
        format!(" without a word in its log {}", log.display())
    } else {
        format!(
            "; the end of its log {}:\n  {}",
            log.display(),
            tail.join("\n  ")
        )
    }
}

/// How long a client waits for the agent's next line. A token request may
/// wait much longer for its plugin (a login), but meanwhile the agent sends
/// a heartbeat every few seconds.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The agent's final answer to a request.
enum Answer {
    Ok(Response),
    /// It answered with an error.
    Refused(ClientError),
}

impl Answer {
    fn into_result(self) -> Result<Response, ClientError> {
        match self {
            Answer::Ok(response) => Ok(response),
            Answer::Refused(error) => Err(error),
        }
    }
}

/// A connection to the agent.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// When [`Client::request_until`] gives up.
    deadline: Option<Instant>,
}

impl Client {
    /// Connects to a running agent.
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| {
            if matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) {
                ClientError::NotRunning(socket.to_owned())
            } else {
                ClientError::Io {
                    path: socket.to_owned(),
                    source,
                }
            }
        })?;
        // A stuck agent must not hang its clients: every read and write
        // gives up after ANSWER_TIMEOUT (the agent's heartbeat keeps a long
        // login alive).
        let timeouts = stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)));
        let writer = timeouts
            .and_then(|()| stream.try_clone())
            .map_err(|source| ClientError::Io {
                path: socket.to_owned(),
                source,
            })?;
        Ok(Client {
            path: socket.to_owned(),
            reader: BufReader::new(stream),
            writer,
            deadline: None,
        })
    }

    /// Connects to the agent of a client that may start it: with `autostart`,
    /// as [`Client::connect_or_start`], an agent started here reading
    /// `config` (made absolute: the agent runs from `/`); without, only
    /// [`Client::connect`].
    pub fn connect_maybe_starting(
        socket: &Path,
        autostart: bool,
        config: Option<&Path>,
    ) -> Result<Client, ClientError> {
        if !autostart {
            return Client::connect(socket);
        }
        let mut agent_args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(config) = config {
            let config =
                std::path::absolute(config).map_err(|source| ClientError::AutostartSetup {
                    what: format!("resolving --config {}", config.display()),
                    source,
                })?;
            agent_args.push("--config".into());
            agent_args.push(config.into());
        }
        Client::connect_or_start(socket, &agent_args)
    }

    /// Connects, starting an agent in the background first if none runs.
    /// `agent_args` are passed to `authplug agent` (say `--config FILE`).
    pub fn connect_or_start(
        socket: &Path,
        agent_args: &[std::ffi::OsString],
    ) -> Result<Client, ClientError> {
        match Client::connect(socket) {
            Err(ClientError::NotRunning(_)) => {}
            other => return other,
        }
        let lock = paths::lock_file(socket);
        // `None` while another process holds the lock.
        let mut agent = Some(start_agent(socket, agent_args)?);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect(socket) {
                Err(ClientError::NotRunning(_)) if Instant::now() < deadline => {
                    match &mut agent {
                        Some(started) => {
                            if let Some(status) = started.child.try_wait().ok().flatten() {
                                if status.code() != Some(super::server::EXIT_ALREADY_RUNNING) {
                                    return Err(started.died(status));
                                }
                                // Lost the race for the lock: to another
                                // client's agent, which will listen soon, or
                                // to a moment's probe (`authplug stop`
                                // checking that the old agent is gone).
                                agent = None;
                            }
                        }
                        // Nobody listens and nobody holds the lock: whoever
                        // did was no agent, or died before it listened.
                        None if lock_is_free(&lock) && Client::connect(socket).is_err() => {
                            agent = Some(start_agent(socket, agent_args)?);
                        }
                        None => {}
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(ClientError::NotRunning(_)) => {
                    return Err(ClientError::AutostartSilent {
                        socket: socket.to_owned(),
                    })
                }
                other => return other,
            }
        }
    }

    /// [`Client::request`] that gives up at `deadline` with
    /// [`ClientError::OutOfTime`] (for a command its caller kills after a
    /// while). The agent sees the client go.
    pub fn request_until(
        &mut self,
        op: Op,
        on_stderr: impl FnMut(&str),
        deadline: Instant,
    ) -> Result<Response, ClientError> {
        self.deadline = Some(deadline);
        let answer = self.request(op, on_stderr);
        self.deadline = None;
        // Back to the usual wait, for a request after this one.
        let _ = self.reader.get_ref().set_read_timeout(Some(ANSWER_TIMEOUT));
        answer
    }

    /// Sends one request; progress lines go to `on_stderr`; returns the
    /// final answer, or its error as [`ClientError::Agent`].
    pub fn request(
        &mut self,
        op: Op,
        mut on_stderr: impl FnMut(&str),
    ) -> Result<Response, ClientError> {
        let request = Request {
            v: WIRE_VERSION,
            op,
        };
        let mut bytes = Zeroizing::new(
            serde_json::to_vec(&request)
                .map_err(|e| ClientError::Protocol(ProtocolProblem::Encode(e)))?,
        );
        drop(request);
        bytes.push(b'\n');
        let sent = self.writer.write_all(&bytes);
        let mut line = Zeroizing::new(Vec::new());
        if let Err(source) = sent {
            // An agent that refuses us answers and hangs up before reading:
            // show its reason rather than the broken pipe.
            return match self.read_answer(&mut line, &mut on_stderr) {
                Ok(answer) => answer.into_result(),
                Err(_) => Err(self.io(source)),
            };
        }
        self.read_answer(&mut line, &mut on_stderr)?.into_result()
    }

    /// Reads lines until the final one: the agent's answer, or why none
    /// could be read.
    fn read_answer(
        &mut self,
        line: &mut Vec<u8>,
        on_stderr: &mut impl FnMut(&str),
    ) -> Result<Answer, ClientError> {
        loop {
            line.clear();
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ClientError::OutOfTime);
                }
                self.reader
                    .get_ref()
                    .set_read_timeout(Some(left.min(ANSWER_TIMEOUT)))
                    .map_err(|source| self.io(source))?;
            }
            let read = (&mut self.reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', line)
                .map_err(|source| self.io(source))?;
            if read == 0 {
                return Err(ClientError::Protocol(ProtocolProblem::Closed));
            }
            if !line.ends_with(b"\n") && read as u64 == MAX_LINE as u64 {
                return Err(ClientError::Protocol(ProtocolProblem::LineTooLong));
            }
            let response: Response = serde_json::from_slice(line)
                .map_err(|e| ClientError::Protocol(ProtocolProblem::Decode(e)))?;
            if !response.is_final() {
                if let Some(text) = &response.stderr {
                    on_stderr(text);
                }
                continue;
            }
            if response.ok == Some(true) {
                return Ok(Answer::Ok(response));
            }
            return Ok(Answer::Refused(ClientError::Agent {
                kind: response.kind,
                message: response
                    .error
                    .clone()
                    .unwrap_or_else(|| "the agent reported an error without a message".into()),
            }));
        }
    }

    fn io(&self, source: io::Error) -> ClientError {
        let timed_out = matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        if timed_out && self.deadline.is_some_and(|d| Instant::now() >= d) {
            return ClientError::OutOfTime;
        }
        if timed_out {
            return ClientError::NoAnswer {
                path: self.path.clone(),
            };
        }
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// After a `stop` was answered: waits, up to `timeout`, until the agent has
/// let go of its lock (which it releases after removing its socket), so a
/// new agent can start on the same socket at once.
pub fn wait_until_stopped(socket: &Path, timeout: Duration) -> Result<(), ClientError> {
    let deadline = Instant::now() + timeout;
    let lock = paths::lock_file(socket);
    while !agent_gone(socket, &lock) {
        if Instant::now() >= deadline {
            return Err(ClientError::StillRunning {
                socket: socket.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn agent_gone(socket: &Path, lock: &Path) -> bool {
    if lock.exists() {
        lock_is_free(lock)
    } else {
        // No lock file (an agent from before there was one): the socket.
        !socket.exists()
    }
}

/// Taking the lock for a moment is the only portable way to see it is free;
/// an agent starting in that moment exits as if another one ran, and its
/// client, finding the lock free and no socket, starts it again.
fn lock_is_free(lock: &Path) -> bool {
    match std::fs::File::open(lock) {
        Ok(file) => {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
        }
        Err(error) => error.kind() == io::ErrorKind::NotFound,
    }
}

/// An agent this client started.
struct StartedAgent {
    child: std::process::Child,
    log: PathBuf,
    /// The log's length before this agent started: its own lines follow.
    log_start: u64,
}

/// How many of a dead agent's last log lines an autostart error shows.
const LOG_TAIL_LINES: usize = 10;

impl StartedAgent {
    /// The message for an agent that exited before it listened.
    fn died(&self, status: std::process::ExitStatus) -> ClientError {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            use std::io::Seek;
            if file.seek(io::SeekFrom::Start(self.log_start)).is_ok() {
                // A few KiB are plenty for the last lines of a failed start.
                let _ = file.take(64 * 1024).read_to_string(&mut text);
            }
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        ClientError::AutostartDied {
            status,
            log: self.log.clone(),
            tail: tail.iter().map(|line| line.to_string()).collect(),
        }
    }
}

/// Starts `authplug agent --socket SOCKET` detached: its own session, stdin
/// from /dev/null, output appended to the log file beside the socket.
fn start_agent(
    socket: &Path,
    agent_args: &[std::ffi::OsString],
) -> Result<StartedAgent, ClientError> {
    let fail = |what: &str, source: io::Error| ClientError::AutostartSetup {
        what: what.to_owned(),
        source,
    };
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    paths::socket_dir(dir).map_err(|e| fail("cannot create the socket's directory", e))?;
    let log_path = paths::log_file(socket);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| fail(&format!("cannot open the log {}", log_path.display()), e))?;
    let log_start = log.metadata().map_or(0, |m| m.len());
    let log_err = log
        .try_clone()
        .map_err(|e| fail("cannot open the log", e))?;
    let exe = paths::authplug_program().map_err(|e| fail("cannot find the authplug program", e))?;
    let socket =
        std::path::absolute(socket).map_err(|e| fail("cannot resolve the socket path", e))?;
    let mut command = Command::new(exe);
    command
        .arg("agent")
        .arg("--socket")
        .arg(&socket)
        .args(agent_args)
        // A long-lived daemon should not keep the caller's directory busy;
        // relative paths in `agent_args` must be made absolute by the caller.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    detach(&mut command);
    let child = command
        .spawn()
        .map_err(|e| fail("cannot run authplug agent", e))?;
    tracing::info!(socket = %socket.display(), log = %log_path.display(), "started an agent in the background");
    Ok(StartedAgent {
        child,
        log: log_path,
        log_start,
    })
}

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;

fn detach(command: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory; it gives
    // the agent its own session, so the terminal's hangup and Ctrl-C do not
    // reach it.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(io::Error::from)?;
            Ok(())
        });
    }
}
