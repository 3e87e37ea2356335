//! The host side: run a plugin once and get its token and new state.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use authplug_protocol::host::{run, PluginCommand, RunOptions};
//! use authplug_protocol::State;
//!
//! let command = PluginCommand::parse("authplug-oidc --issuer https://id.example.com --client-id cli")?;
//! let output = run(&command, &State::default(), &RunOptions::default()).await?;
//! let next_state = output.state; // hand this back on the next run
//! # let _ = (output.token, next_state);
//! # Ok(()) }
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::secret::SecretBuf;
use crate::spawn::PluginProcess;
use crate::{
    Reason, State, Token, ENV_INTERACTIVE, ENV_PROTOCOL, ENV_REASON, PROTOCOL_VERSION, STATE_LIMIT,
    TOKEN_LIMIT,
};

/// A plugin's argv: the program and its arguments. Never run through a shell
/// (rule 1).
#[derive(Clone, PartialEq, Eq)]
pub struct PluginCommand {
    program: OsString,
    args: Vec<OsString>,
}

/// A configured command line that cannot become an argv.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandLineError {
    #[error("the plugin command line is empty: give the plugin program and its arguments")]
    Empty,
    #[error("the plugin command line cannot be split into words ({0}): check its quotes")]
    Syntax(#[from] shell_words::ParseError),
}

impl PluginCommand {
    pub fn new(program: impl Into<OsString>) -> Self {
        PluginCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An argv whose first element is the program.
    pub fn from_argv<I, S>(argv: I) -> Result<Self, CommandLineError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = argv.into_iter().map(Into::into);
        let program = argv.next().ok_or(CommandLineError::Empty)?;
        if program.is_empty() {
            return Err(CommandLineError::Empty);
        }
        Ok(PluginCommand {
            program,
            args: argv.collect(),
        })
    }

    /// Splits a configured command line by POSIX shell-word rules (quotes
    /// and backslashes, no expansion of any kind).
    pub fn parse(command_line: &str) -> Result<Self, CommandLineError> {
        Self::from_argv(shell_words::split(command_line)?)
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }
}

impl fmt::Display for PluginCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        f.write_str(&shell_words::join(words))
    }
}

impl fmt::Debug for PluginCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginCommand({self})")
    }
}

/// Receives each line the plugin writes on stderr, as it arrives (rule 5).
/// Called on the task that runs the plugin: it must not block.
pub type StderrSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How to run a plugin. Start from `RunOptions::default()` and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// `AUTHPLUG_REASON`; `None` means `initial` for empty state, else
    /// `refresh`.
    pub reason: Option<Reason>,
    /// `AUTHPLUG_INTERACTIVE`.
    pub interactive: bool,
    /// The whole run, start to finish (rule 7).
    pub timeout: Duration,
    /// Between TERM and KILL when the host stops a plugin (rule 7).
    pub kill_grace: Duration,
    /// How long, after the plugin exits, the host keeps reading output that
    /// a background child may still hold open (rule 8).
    pub drain_window: Duration,
    /// Extra environment for the plugin, on top of the host's own.
    pub env: Vec<(OsString, OsString)>,
    /// Where stderr lines go as they arrive.
    pub stderr_sink: Option<StderrSink>,
    /// How many of the last stderr lines an error carries.
    pub stderr_tail_lines: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            reason: None,
            interactive: true,
            timeout: Duration::from_secs(300),
            kill_grace: Duration::from_secs(2),
            drain_window: Duration::from_secs(1),
            env: Vec::new(),
            stderr_sink: None,
            stderr_tail_lines: 20,
        }
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("reason", &self.reason)
            .field("interactive", &self.interactive)
            .field("timeout", &self.timeout)
            .field("kill_grace", &self.kill_grace)
            .field("drain_window", &self.drain_window)
            // Names only: a value may be a secret the caller passes on.
            .field(
                "env",
                &self.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field(
                "stderr_sink",
                &self.stderr_sink.as_ref().map(|_| "Fn(&str)"),
            )
            .field("stderr_tail_lines", &self.stderr_tail_lines)
            .finish()
    }
}

/// What a successful run produced.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunOutput {
    /// Stdout with one trailing `\n` or `\r\n` removed; never empty.
    pub token: Token,
    /// Exactly what the plugin wrote on fd 3; empty if it wrote nothing
    /// (which clears the stored state).
    pub state: State,
    /// The last lines of stderr.
    pub stderr_tail: String,
    pub elapsed: Duration,
}

/// Why a run failed. In every case the caller's stored state must stay as it
/// was (rule 4); every variant that follows the plugin's start carries the
/// tail of its stderr, which `Display` shows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("could not start plugin `{program}`: {source}{}", spawn_hint(source))]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "plugin timed out after {} and was stopped{}",
        seconds(after),
        tail(stderr_tail)
    )]
    TimedOut {
        after: Duration,
        stderr_tail: String,
    },
    #[error("plugin wrote more than {limit} bytes of state on fd 3 (the protocol's limit) and was stopped{}", tail(stderr_tail))]
    StateTooLarge { limit: usize, stderr_tail: String },
    #[error(
        "plugin wrote more than {limit} bytes on stdout (the token limit) and was stopped{}",
        tail(stderr_tail)
    )]
    TokenTooLarge { limit: usize, stderr_tail: String },
    #[error(
        "plugin exited successfully but printed no token on stdout{}",
        tail(stderr_tail)
    )]
    EmptyToken { stderr_tail: String },
    #[error("plugin failed with exit code {code}{}", tail(stderr_tail))]
    Exited { code: i32, stderr_tail: String },
    #[error("plugin was killed by signal {}{}", signal_name(*signal), tail(stderr_tail))]
    Signaled { signal: i32, stderr_tail: String },
    #[error("plugin exited, but a process it started still holds its stdout, stdin or fd 3 open outside its process group{}", tail(stderr_tail))]
    LeakedDescriptors { stderr_tail: String },
    #[error("I/O error while talking to the plugin: {source}{}", tail(stderr_tail))]
    Io {
        #[source]
        source: io::Error,
        stderr_tail: String,
    },
}

impl RunError {
    /// The last lines the plugin wrote on stderr, if it got that far.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            RunError::Spawn { .. } => None,
            RunError::TimedOut { stderr_tail, .. }
            | RunError::StateTooLarge { stderr_tail, .. }
            | RunError::TokenTooLarge { stderr_tail, .. }
            | RunError::EmptyToken { stderr_tail }
            | RunError::Exited { stderr_tail, .. }
            | RunError::Signaled { stderr_tail, .. }
            | RunError::LeakedDescriptors { stderr_tail }
            | RunError::Io { stderr_tail, .. } => Some(stderr_tail),
        }
    }
}

fn spawn_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => " (is it installed, and on PATH or given by full path?)",
        io::ErrorKind::PermissionDenied => " (is the file executable? try chmod +x)",
        _ => "",
    }
}

fn seconds(duration: &Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

fn tail(stderr_tail: &str) -> String {
    if stderr_tail.is_empty() {
        String::new()
    } else {
        let indented: Vec<String> = stderr_tail.lines().map(|l| format!("  {l}")).collect();
        format!("; its last words on stderr:\n{}", indented.join("\n"))
    }
}

fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => format!("{} ({signal})", known.as_str()),
        Err(_) => signal.to_string(),
    }
}

/// Runs `command` once with `state` on its stdin (rules 1 to 9).
///
/// Dropping the returned future cancels the run: the plugin's process group
/// gets TERM, then KILL after `kill_grace`, and is reaped in the background.
pub async fn run(
    command: &PluginCommand,
    state: &State,
    options: &RunOptions,
) -> Result<RunOutput, RunError> {
    let started = Instant::now();
    let (state_pipe, state_pipe_for_plugin) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| RunError::Spawn {
            program: command.program.to_string_lossy().into_owned(),
            source: io::Error::from(errno),
        })?;

    if state.len() > DEFAULT_PIPE_SIZE {
        // A plugin given a large state usually returns one.
        enlarge_pipe(&state_pipe, state.len());
    }
    let mut child = spawn(command, state, options, state_pipe_for_plugin)?;
    let mut group = ProcessGroup::new(&child, options.kill_grace);
    if let Some(stdin) = &child.stdin {
        if state.len() > DEFAULT_PIPE_SIZE {
            enlarge_pipe(stdin, state.len());
        }
    }
    let stderr_tail = Arc::new(Mutex::new(StderrTail::new(options.stderr_tail_lines)));

    let (Some(stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        unreachable!("all three standard streams are piped in spawn()");
    };
    let deadline = tokio::time::sleep(options.timeout);
    let finished = async {
        // The output pipes live out here, not in the futures that read
        // them: on a failure the group is signalled first and the pipes
        // close after, so the plugin cannot run on past an EPIPE.
        let mut state_pipe = crate::spawn::receiver(state_pipe)?;
        // Empty state: closing stdin at once is all rule 2 asks.
        let stdin = if state.is_empty() {
            drop(stdin);
            None
        } else {
            Some(crate::spawn::sender(stdin)?)
        };
        let outputs = async {
            tokio::try_join!(
                read_capped(&mut stdout, TOKEN_LIMIT, Failure::TokenTooLarge),
                read_capped(&mut state_pipe, STATE_LIMIT, Failure::StateTooLarge),
                async {
                    pump_stderr(stderr, options.stderr_sink.as_ref(), &stderr_tail).await;
                    Ok(())
                },
                async {
                    feed_stdin(stdin, state.as_bytes()).await;
                    Ok(())
                },
            )
        };
        tokio::pin!(outputs, deadline);
        let result = async {
            // Wait for the plugin to exit; its output usually closes first.
            let (status, early) = tokio::select! {
                status = child.wait() => (status?, None),
                outputs = &mut outputs => {
                    // An over-limit error must not wait for the plugin to exit.
                    let done = outputs?;
                    (child.wait().await?, Some(done))
                }
            };
            let (token, new_state, (), ()) = match early {
                Some(done) => done,
                None => drain(&mut outputs, &group, options.drain_window).await?,
            };
            Ok::<_, Failure>((status, token, new_state))
        };
        let result = tokio::select! {
            result = result => result,
            () = &mut deadline => Err(Failure::TimedOut),
        };
        if result.is_err() {
            group.signal(Signal::SIGTERM);
        }
        result
    }
    .await;

    let tail_text = || lock(&stderr_tail).text();
    match finished {
        Err(Failure::TimedOut) => {
            group.terminate(child).await;
            Err(RunError::TimedOut {
                after: options.timeout,
                stderr_tail: tail_text(),
            })
        }
        Err(failure) => {
            group.terminate(child).await;
            Err(failure.into_error(tail_text()))
        }
        Ok((status, token, new_state)) => {
            group.disarm();
            judge(status, token, new_state, tail_text(), started.elapsed())
        }
    }
}

/// Linux's default pipe buffer.
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Fewer, larger hand-overs between host and plugin for a large state: up
/// to 1 MiB (the kernel's default ceiling for unprivileged processes). A
/// refusal (that ceiling, or the per-user pipe budget) just leaves the pipe
/// as it was.
fn enlarge_pipe(pipe: &impl std::os::fd::AsFd, wanted: usize) {
    #[cfg(target_os = "linux")]
    {
        let size = wanted.min(1024 * 1024) as libc::c_int;
        let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (pipe, wanted);
}

fn spawn(
    command: &PluginCommand,
    state: &State,
    options: &RunOptions,
    state_pipe_for_plugin: OwnedFd,
) -> Result<PluginProcess, RunError> {
    let reason = options
        .reason
        .clone()
        .unwrap_or_else(|| Reason::for_state(state));
    // The host's environment, then the caller's additions, then ours.
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let additions = options.env.iter().cloned().chain([
        (ENV_PROTOCOL.into(), PROTOCOL_VERSION.to_string().into()),
        (ENV_REASON.into(), reason.as_str().into()),
        (
            ENV_INTERACTIVE.into(),
            if options.interactive { "1" } else { "0" }.into(),
        ),
    ]);
    for (key, value) in additions {
        env.retain(|(existing, _)| *existing != key);
        env.push((key, value));
    }
    crate::spawn::spawn(&command.program, &command.args, &env, state_pipe_for_plugin).map_err(
        |source| RunError::Spawn {
            program: command.program.to_string_lossy().into_owned(),
            source,
        },
    )
}

/// The rest of rule 3, 4 and 6 once the plugin has exited and its output is
/// read.
fn judge(
    status: ExitStatus,
    mut stdout: SecretBuf,
    new_state: SecretBuf,
    stderr_tail: String,
    elapsed: Duration,
) -> Result<RunOutput, RunError> {
    if let Some(signal) = status.signal() {
        return Err(RunError::Signaled {
            signal,
            stderr_tail,
        });
    }
    match status.code() {
        Some(0) => {}
        Some(code) => return Err(RunError::Exited { code, stderr_tail }),
        None => {
            return Err(RunError::Io {
                source: io::Error::other(format!("unexpected exit status {status}")),
                stderr_tail,
            })
        }
    }
    let bytes = stdout.as_slice();
    let trimmed = if bytes.ends_with(b"\r\n") {
        bytes.len() - 2
    } else if bytes.ends_with(b"\n") {
        bytes.len() - 1
    } else {
        bytes.len()
    };
    stdout.truncate(trimmed);
    if trimmed == 0 {
        return Err(RunError::EmptyToken { stderr_tail });
    }
    Ok(RunOutput {
        token: Token::new(stdout.into_vec()),
        state: State::new(new_state.into_vec()),
        stderr_tail,
        elapsed,
    })
}

/// What went wrong inside the run, before the stderr tail is attached.
enum Failure {
    TimedOut,
    StateTooLarge,
    TokenTooLarge,
    LeakedDescriptors,
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Io(error)
    }
}

impl Failure {
    fn into_error(self, stderr_tail: String) -> RunError {
        match self {
            Failure::StateTooLarge => RunError::StateTooLarge {
                limit: STATE_LIMIT,
                stderr_tail,
            },
            Failure::TokenTooLarge => RunError::TokenTooLarge {
                limit: TOKEN_LIMIT,
                stderr_tail,
            },
            Failure::LeakedDescriptors => RunError::LeakedDescriptors { stderr_tail },
            // Handled by the caller, which knows the timeout.
            Failure::TimedOut => RunError::TimedOut {
                after: Duration::ZERO,
                stderr_tail,
            },
            Failure::Io(source) => RunError::Io {
                source,
                stderr_tail,
            },
        }
    }
}

/// Rule 8: after the plugin exited, give its output `window` to close; if a
/// background child holds it open, kill the group and give it one more.
async fn drain<F, T>(outputs: &mut F, group: &ProcessGroup, window: Duration) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Failure>> + Unpin,
{
    if let Ok(done) = tokio::time::timeout(window, &mut *outputs).await {
        return done;
    }
    group.kill_members();
    match tokio::time::timeout(window, outputs).await {
        Ok(done) => done,
        Err(_) => Err(Failure::LeakedDescriptors),
    }
}

/// Reads to EOF, failing as soon as more than `limit` bytes arrive.
async fn read_capped<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
    over_limit: Failure,
) -> Result<SecretBuf, Failure> {
    // One byte of room past the limit, to see that it was passed.
    let mut buf = SecretBuf::new(limit + 1);
    loop {
        if buf.read_from(reader).await? == 0 {
            return Ok(buf);
        }
        if buf.len() > limit {
            return Err(over_limit);
        }
    }
}

/// Rule 2: the state, then EOF. A plugin that never reads stdin is fine, so
/// a broken pipe is not an error; nor is anything else here, since the
/// plugin's exit code says whether it got what it needed.
async fn feed_stdin(stdin: Option<tokio::net::unix::pipe::Sender>, state: &[u8]) {
    let Some(mut stdin) = stdin else {
        return;
    };
    let _ = stdin.write_all(state).await;
    let _ = stdin.shutdown().await;
}

/// Longest stderr line passed on; the rest of a longer line is dropped.
const STDERR_LINE_LIMIT: usize = 4096;

/// Rule 5: streams stderr line by line to the sink and keeps a bounded tail.
async fn pump_stderr<R: AsyncRead + Unpin>(
    mut stderr: R,
    sink: Option<&StderrSink>,
    tail: &Mutex<StderrTail>,
) {
    let mut chunk = vec![0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
    let emit = |line: &mut Vec<u8>, overlong: &mut bool| {
        if line.ends_with(b"\r") {
            line.pop();
        }
        let mut text = String::from_utf8_lossy(line).into_owned();
        if *overlong {
            text.push_str(" [...]");
        }
        if let Some(sink) = sink {
            sink(&text);
        }
        lock(tail).push(text);
        line.clear();
        *overlong = false;
    };
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
            let (body, complete) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            let room = STDERR_LINE_LIMIT.saturating_sub(line.len());
            line.extend_from_slice(&body[..body.len().min(room)]);
            overlong |= body.len() > room;
            if complete {
                emit(&mut line, &mut overlong);
            }
        }
    }
    if !line.is_empty() || overlong {
        emit(&mut line, &mut overlong);
    }
}

struct StderrTail {
    lines: std::collections::VecDeque<String>,
    max_lines: usize,
}

impl StderrTail {
    fn new(max_lines: usize) -> Self {
        StderrTail {
            lines: std::collections::VecDeque::new(),
            max_lines,
        }
    }

    fn push(&mut self, line: String) {
        if self.max_lines == 0 {
            return;
        }
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The tail holds plain text; a panic elsewhere cannot leave it invalid.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The plugin's process group, stopped when the run fails or is cancelled
/// (rule 7).
struct ProcessGroup {
    pgid: Option<Pid>,
    grace: Duration,
    armed: bool,
}

impl ProcessGroup {
    fn new(child: &PluginProcess, grace: Duration) -> Self {
        ProcessGroup {
            // The leader's pid is the group id (it was spawned as leader).
            pgid: Some(Pid::from_raw(child.id())),
            grace,
            armed: true,
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH just means everyone is gone already.
            let _ = killpg(pgid, signal);
        }
    }

    fn kill_members(&self) {
        self.signal(Signal::SIGKILL);
    }

    /// TERM, up to `grace` for the leader to exit, KILL for whatever is
    /// left, then reap the leader.
    async fn terminate(&mut self, mut child: PluginProcess) {
        self.armed = false;
        self.signal(Signal::SIGTERM);
        let _ = tokio::time::timeout(self.grace, child.wait()).await;
        self.signal(Signal::SIGKILL);
        let _ = child.wait().await;
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    /// Cancellation: the run's future was dropped mid-way.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.signal(Signal::SIGTERM);
        let (pgid, grace) = (self.pgid, self.grace);
        let kill_later = move || {
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    kill_later();
                });
            }
            Err(_) => kill_later(),
        }
        // The dropped `PluginProcess` reaps the leader in the background.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_options_debug_shows_env_names_but_not_values() {
        let options = RunOptions {
            env: vec![("AUTHPLUG_OIDC_CLIENT_SECRET".into(), "s3cr3t-value".into())],
            ..RunOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("AUTHPLUG_OIDC_CLIENT_SECRET"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }
}
