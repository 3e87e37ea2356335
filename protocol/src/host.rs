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
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use crate::secret::SecretBuf;
use crate::spawn::{receiver, sender, set_nonblocking, HostPipes, PluginProcess, Spawn, Terminal};
use crate::{
    Reason, State, Token, ENV_INTERACTIVE, ENV_KEEP_STATE_EXIT, ENV_PROTOCOL, ENV_REASON,
    KEEP_STATE_EXIT_CODE, PROTOCOL_VERSION, STATE_LIMIT, TOKEN_LIMIT,
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
    /// Extra environment for the plugin, on top of the host's own. The copy
    /// the host makes for each spawn is wiped right after it (a value may be
    /// a client secret); this one is the caller's to wipe.
    pub env: Vec<(OsString, OsString)>,
    /// Where stderr lines go as they arrive.
    pub stderr_sink: Option<StderrSink>,
    /// How many of the last stderr lines an error carries.
    pub stderr_tail_lines: usize,
    /// Lend the controlling terminal to the plugin for the run: its process
    /// group becomes the terminal's foreground group before it starts, and
    /// the host's again when the run ends. A plugin in its own group (rule
    /// 7) can then prompt on `/dev/tty` instead of being stopped by SIGTTIN,
    /// and the terminal's Ctrl-C reaches it. Only takes effect when the host
    /// is itself in the terminal's foreground group; for a program run by a
    /// user at a terminal, such as `authplug run`.
    pub foreground_terminal: bool,
    /// Offer the plugin to keep the state of a failed run (rule 4): set
    /// `AUTHPLUG_KEEP_STATE_EXIT`, and turn a run that exits with that code
    /// after writing a state into [`RunError::FailedWithNewState`]. A host
    /// that cannot store such a state must set this to `false`: the plugin
    /// then knows not to rely on it.
    pub keep_state_on_failure: bool,
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
            foreground_terminal: false,
            keep_state_on_failure: true,
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
            .field("foreground_terminal", &self.foreground_terminal)
            .field("keep_state_on_failure", &self.keep_state_on_failure)
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
    /// The plugin failed, but asked the host to keep the state it wrote
    /// (rule 4): it obtained something it must not lose, such as a rotated
    /// refresh token. The caller stores `state` in place of the old one
    /// ([`RunError::take_new_state`]) and still treats the run as failed.
    #[error(
        "plugin failed, and handed back an updated state to keep for its next run{}",
        tail(stderr_tail)
    )]
    FailedWithNewState { state: State, stderr_tail: String },
    #[error("plugin was killed by signal {}{}", signal_name(*signal), tail(stderr_tail))]
    Signaled { signal: i32, stderr_tail: String },
    #[error("plugin exited, but a process it started still holds its stdout or fd 3 open outside its process group: start helpers with their output redirected and without fd 3{}", tail(stderr_tail))]
    LeakedDescriptors { stderr_tail: String },
    /// [`run_until`]'s `cancel` completed; the plugin was stopped.
    #[error("the run was cancelled and the plugin stopped{}", tail(stderr_tail))]
    Cancelled { stderr_tail: String },
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
            | RunError::FailedWithNewState { stderr_tail, .. }
            | RunError::Signaled { stderr_tail, .. }
            | RunError::LeakedDescriptors { stderr_tail }
            | RunError::Cancelled { stderr_tail }
            | RunError::Io { stderr_tail, .. } => Some(stderr_tail),
        }
    }
}

impl RunError {
    /// The state a failed run asked the host to keep
    /// ([`RunError::FailedWithNewState`]), taken out of the error so that the
    /// error can be passed on (shown, cloned into an `Arc`) without it.
    /// `None` for every other failure: keep the old state.
    pub fn take_new_state(&mut self) -> Option<State> {
        match self {
            RunError::FailedWithNewState { state, .. } if !state.is_empty() => {
                Some(std::mem::take(state))
            }
            _ => None,
        }
    }

    /// The message without the stderr tail, for a host that has shown the
    /// plugin's stderr to the user as it came (rule 5): saying it again as
    /// "its last words" would print every line twice.
    pub fn summary(&self) -> String {
        let full = self.to_string();
        match self.stderr_tail() {
            Some(stderr_tail) if !stderr_tail.is_empty() => full
                .strip_suffix(&tail(stderr_tail))
                .map(str::to_owned)
                .unwrap_or(full),
            _ => full,
        }
    }

    /// Whether the run handed back a state to keep (not yet taken).
    pub fn has_new_state(&self) -> bool {
        matches!(self, RunError::FailedWithNewState { state, .. } if !state.is_empty())
    }
}

fn spawn_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => " (is it installed, and on PATH or given by full path?)",
        io::ErrorKind::PermissionDenied => " (is the file executable? try chmod +x)",
        _ if error.raw_os_error() == Some(libc::ETXTBSY) => {
            " (something still has the file open for writing: is it being installed?)"
        }
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
/// A program that is about to exit (on Ctrl-C, say) should use
/// [`run_until`] instead, which returns only once the plugin is gone.
pub async fn run(
    command: &PluginCommand,
    state: &State,
    options: &RunOptions,
) -> Result<RunOutput, RunError> {
    run_until(command, state, options, std::future::pending()).await
}

/// [`run`], stopped when `cancel` completes: TERM to the plugin's group, up
/// to `kill_grace` for it to exit, KILL, reaped, and only then
/// [`RunError::Cancelled`].
pub async fn run_until(
    command: &PluginCommand,
    state: &State,
    options: &RunOptions,
    cancel: impl Future<Output = ()>,
) -> Result<RunOutput, RunError> {
    let started = Instant::now();
    let spawn_error = |source| RunError::Spawn {
        program: command.program.to_string_lossy().into_owned(),
        source,
    };
    let (state_pipe, state_pipe_for_plugin) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| spawn_error(io::Error::from(errno)))?;
    if state.len() > DEFAULT_PIPE_SIZE {
        // A plugin given a large state usually returns one.
        enlarge_pipe(&state_pipe, state.len());
    }
    // Dropped last: the terminal comes back once the run is over.
    let mut terminal = options
        .foreground_terminal
        .then(Terminal::if_foreground)
        .flatten();

    // Rule 1: the host's environment, then the caller's additions, then ours.
    let reason = options
        .reason
        .clone()
        .unwrap_or_else(|| Reason::for_state(state));
    let version = PROTOCOL_VERSION.to_string();
    let interactive = if options.interactive { "1" } else { "0" };
    let keep_state_exit = KEEP_STATE_EXIT_CODE.to_string();
    let env: Vec<(&OsStr, &OsStr)> = (options.env.iter())
        .map(|(name, value)| (name.as_os_str(), value.as_os_str()))
        .chain([
            (OsStr::new(ENV_PROTOCOL), OsStr::new(&version)),
            (OsStr::new(ENV_REASON), OsStr::new(reason.as_str())),
            (OsStr::new(ENV_INTERACTIVE), OsStr::new(interactive)),
        ])
        .chain(options.keep_state_on_failure.then(|| {
            (
                OsStr::new(ENV_KEEP_STATE_EXIT),
                OsStr::new(&keep_state_exit),
            )
        }))
        .collect();
    // A plugin file just written can still be open for writing for a
    // moment (in a process another thread forked and that has not exec'd
    // yet, or an installer finishing): the kernel then refuses to run it
    // (ETXTBSY), and a little later does not.
    let mut pause = Duration::from_millis(1);
    let (plugin, pipes) = loop {
        let started = crate::spawn::spawn(Spawn {
            program: &command.program,
            args: &command.args,
            env: &env,
            state_fd: state_pipe_for_plugin.as_fd(),
            terminal: terminal.as_ref().map(Terminal::fd),
            grace: options.kill_grace,
        });
        match started {
            Err(error)
                if error.raw_os_error() == Some(libc::ETXTBSY) && pause <= TEXT_BUSY_PATIENCE =>
            {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            started => break started.map_err(spawn_error)?,
        }
    };
    // The plugin has its copy; ours must close so the state pipe reaches EOF.
    drop(state_pipe_for_plugin);
    if let Some(terminal) = &mut terminal {
        terminal.lent_to(plugin.pid());
    }
    let exchange = match Exchange::new(pipes, state_pipe, state, options) {
        Ok(exchange) => exchange,
        Err(source) => {
            plugin.stop().await;
            return Err(RunError::Io {
                source,
                stderr_tail: String::new(),
            });
        }
    };

    let mut running = Running { plugin, exchange };
    let outcome = {
        let converse = running
            .exchange
            .converse(&mut running.plugin, options.drain_window);
        tokio::pin!(cancel);
        tokio::select! {
            biased;
            outcome = converse => outcome,
            () = tokio::time::sleep(options.timeout) => Err(Failure::TimedOut),
            () = &mut cancel => Err(Failure::Cancelled),
        }
    };
    let Running {
        mut plugin,
        mut exchange,
    } = running;
    match outcome {
        Ok(status) => {
            let (stdout, new_state, stderr_tail) = exchange.into_outputs();
            // Only now: the drain window's KILL (rule 8) was the last signal.
            plugin.reap();
            judge(
                status,
                stdout,
                new_state,
                stderr_tail,
                options.keep_state_on_failure,
                started.elapsed(),
            )
        }
        Err(failure) => {
            // The group is signalled first and the pipes close after, so the
            // plugin cannot run on past an EPIPE.
            plugin.terminate();
            exchange.stderr.finish();
            let stderr_tail = exchange.stderr.tail.text();
            drop(exchange);
            plugin.stop().await;
            Err(failure.into_error(stderr_tail, options.timeout))
        }
    }
}

/// The longest pause between attempts to start a plugin whose file is busy
/// (ETXTBSY); with the pauses before it, about a quarter of a second.
const TEXT_BUSY_PATIENCE: Duration = Duration::from_millis(128);

/// A started plugin and the host's ends of its pipes. The fields drop in
/// this order, so a cancelled run signals the group before its pipes close.
struct Running<'a> {
    plugin: PluginProcess,
    exchange: Exchange<'a>,
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

/// The rest of rule 3, 4 and 6 once the plugin has exited and its output is
/// read.
fn judge(
    status: ExitStatus,
    mut stdout: SecretBuf,
    new_state: SecretBuf,
    stderr_tail: String,
    keep_state_offered: bool,
    elapsed: Duration,
) -> Result<RunOutput, RunError> {
    if kept_on_failure(status, &new_state, keep_state_offered) {
        return Err(RunError::FailedWithNewState {
            state: State::new(new_state.into_vec()),
            stderr_tail,
        });
    }
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

/// Rule 4's one exception to "a failure keeps the old state", decided here
/// and nowhere else: the host offered it (`AUTHPLUG_KEEP_STATE_EXIT`), the
/// plugin exited with exactly that code, and it wrote a state. Nothing
/// written means nothing to keep: a failed run never clears the state. Any
/// other failure (another code, a signal, a limit, the timeout) keeps the
/// old state, whatever was written.
fn kept_on_failure(status: ExitStatus, new_state: &SecretBuf, offered: bool) -> bool {
    offered && status.code() == Some(KEEP_STATE_EXIT_CODE) && !new_state.as_slice().is_empty()
}

/// What went wrong inside the run, before the stderr tail is attached.
enum Failure {
    TimedOut,
    Cancelled,
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
    fn into_error(self, stderr_tail: String, timeout: Duration) -> RunError {
        match self {
            Failure::TimedOut => RunError::TimedOut {
                after: timeout,
                stderr_tail,
            },
            Failure::Cancelled => RunError::Cancelled { stderr_tail },
            Failure::StateTooLarge => RunError::StateTooLarge {
                limit: STATE_LIMIT,
                stderr_tail,
            },
            Failure::TokenTooLarge => RunError::TokenTooLarge {
                limit: TOKEN_LIMIT,
                stderr_tail,
            },
            Failure::LeakedDescriptors => RunError::LeakedDescriptors { stderr_tail },
            Failure::Io(source) => RunError::Io {
                source,
                stderr_tail,
            },
        }
    }
}

/// How long a plugin may run before the host watches its output pipes,
/// when it had nothing to write to stdin (it all fit in the pipe). Most
/// plugins are done by then: their whole output sits in the pipes when they
/// exit and is read in one go, with one wake-up (the exit) instead of one
/// per pipe, and no pipe ever registered with the runtime. The cost: a
/// plugin that fills a pipe (64 KiB) in that time waits for the rest of
/// it, and stderr lines written in it reach the sink up to that much later.
const QUIET_START: Duration = Duration::from_millis(5);

/// The host's side of the plugin's pipes: stdin fed (rule 2), stdout and
/// fd 3 read under their limits (rules 3 and 4), stderr streamed (rule 5),
/// until the plugin exits and its output is drained (rule 8).
struct Exchange<'a> {
    stdout: Capture,
    state: Capture,
    stderr: StderrPump<'a>,
    stdin: Feeder<'a>,
}

impl<'a> Exchange<'a> {
    fn new(
        pipes: HostPipes,
        state_pipe: OwnedFd,
        state: &'a State,
        options: &'a RunOptions,
    ) -> io::Result<Exchange<'a>> {
        if state.len() > DEFAULT_PIPE_SIZE {
            enlarge_pipe(&pipes.stdin, state.len());
        }
        // The state first: the plugin can start reading it at once.
        let stdin = Feeder::new(pipes.stdin, state.as_bytes())?;
        Ok(Exchange {
            stdout: Capture::new(pipes.stdout, TOKEN_LIMIT, || Failure::TokenTooLarge)?,
            state: Capture::new(state_pipe, STATE_LIMIT, || Failure::StateTooLarge)?,
            stderr: StderrPump::new(
                pipes.stderr,
                options.stderr_sink.as_ref(),
                options.stderr_tail_lines,
            )?,
            stdin,
        })
    }

    /// Until the plugin has exited and its stdout and fd 3 are read; fails
    /// at once when either passes its limit.
    async fn converse(
        &mut self,
        plugin: &mut PluginProcess,
        drain_window: Duration,
    ) -> Result<ExitStatus, Failure> {
        let quiet_exit = if self.stdin.is_done() {
            tokio::time::timeout(QUIET_START, plugin.exited())
                .await
                .ok()
        } else {
            None
        };
        let status = match quiet_exit {
            Some(status) => status?,
            None => std::future::poll_fn(|cx| self.poll_until_exit(cx, plugin)).await?,
        };
        // Rule 8: the run ends when the plugin exits. A helper it started
        // may hold stdin unread: feeding it stops here.
        self.stdin.stop();
        if !self.drain(drain_window).await? {
            // Its leader is not reaped yet, so the group id is still the
            // plugin's own.
            plugin.signal(Signal::SIGKILL);
            if !self.drain(drain_window).await? {
                return Err(Failure::LeakedDescriptors);
            }
        }
        // stderr decides nothing: what is there now is kept, then it closes.
        self.stderr.finish();
        Ok(status)
    }

    fn poll_until_exit(
        &mut self,
        cx: &mut Context<'_>,
        plugin: &mut PluginProcess,
    ) -> Poll<Result<ExitStatus, Failure>> {
        // The output first: it usually reaches EOF just before the plugin
        // exits, and then one waitid may confirm the exit.
        let output = self.poll_output(cx)?;
        self.stderr.poll(cx);
        self.stdin.poll(cx);
        if output.is_ready() {
            if let Some(status) = plugin.try_exit()? {
                return Poll::Ready(Ok(status));
            }
        }
        plugin.poll_exit(cx).map_err(Failure::Io)
    }

    /// Waits up to `window` for stdout and fd 3 to reach EOF; `false` if
    /// they did not.
    async fn drain(&mut self, window: Duration) -> Result<bool, Failure> {
        // Usually the plugin's exit closed them and all that is left is in
        // the pipes: read it at once, with no timer and no runtime.
        self.stderr.read_now();
        let stdout = self.stdout.read_now()?;
        let state = self.state.read_now()?;
        if stdout && state {
            return Ok(true);
        }
        let drained = std::future::poll_fn(|cx| self.poll_drain(cx));
        match tokio::time::timeout(window, drained).await {
            Ok(drained) => drained.map(|()| true),
            Err(_elapsed) => Ok(false),
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.stderr.poll(cx);
        self.poll_output(cx)
    }

    /// Ready once stdout and fd 3 are both at EOF.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        let stdout = self.stdout.poll(cx)?;
        let state = self.state.poll(cx)?;
        if stdout.is_ready() && state.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn into_outputs(self) -> (SecretBuf, SecretBuf, String) {
        (self.stdout.bytes, self.state.bytes, self.stderr.tail.text())
    }
}

/// One of the host's read ends: read directly until it is worth waking up
/// for, then registered with the runtime.
enum ReadEnd {
    Direct(OwnedFd),
    Registered(pipe::Receiver),
    /// At EOF, or no longer read.
    Closed,
}

impl ReadEnd {
    fn new(fd: OwnedFd) -> io::Result<ReadEnd> {
        set_nonblocking(&fd)?;
        Ok(ReadEnd::Direct(fd))
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            ReadEnd::Direct(fd) => Some(fd.as_fd()),
            ReadEnd::Registered(receiver) => Some(receiver.as_fd()),
            ReadEnd::Closed => None,
        }
    }

    /// The registered pipe, registering it first if need be; `None` once
    /// closed.
    fn registered(&mut self) -> io::Result<Option<&mut pipe::Receiver>> {
        if let ReadEnd::Direct(_) = self {
            let ReadEnd::Direct(fd) = std::mem::replace(self, ReadEnd::Closed) else {
                unreachable!("matched just above");
            };
            *self = ReadEnd::Registered(receiver(fd)?);
        }
        Ok(match self {
            ReadEnd::Registered(receiver) => Some(receiver),
            _ => None,
        })
    }
}

/// An output pipe read to EOF; fails as soon as more than `limit` bytes
/// arrive (rules 3 and 4).
struct Capture {
    pipe: ReadEnd,
    bytes: SecretBuf,
    limit: usize,
    over_limit: fn() -> Failure,
}

impl Capture {
    fn new(pipe: OwnedFd, limit: usize, over_limit: fn() -> Failure) -> io::Result<Capture> {
        Ok(Capture {
            pipe: ReadEnd::new(pipe)?,
            // One byte of room past the limit, to see that it was passed.
            bytes: SecretBuf::new(limit + 1),
            limit,
            over_limit,
        })
    }

    /// Reads what is in the pipe now, without waiting; `true` at EOF.
    fn read_now(&mut self) -> Result<bool, Failure> {
        while let Some(fd) = self.pipe.fd() {
            match self.bytes.read_available(fd) {
                Ok(0) => self.pipe = ReadEnd::Closed,
                Ok(_) if self.bytes.len() > self.limit => return Err((self.over_limit)()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(Failure::Io(error)),
            }
        }
        Ok(true)
    }

    /// Ready at EOF.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        let Some(pipe) = self.pipe.registered()? else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if ready!(self.bytes.poll_read_from(cx, pipe))? == 0 {
                self.pipe = ReadEnd::Closed;
                return Poll::Ready(Ok(()));
            }
            if self.bytes.len() > self.limit {
                return Poll::Ready(Err((self.over_limit)()));
            }
        }
    }
}

/// Rule 2: the state, then EOF. A plugin that never reads stdin is fine, so
/// a broken pipe is not an error; nor is anything else here, since the
/// plugin's exit code says whether it got what it needed.
struct Feeder<'a> {
    pipe: Feed,
    rest: &'a [u8],
}

enum Feed {
    Done,
    /// Not registered with the runtime: a state that fits in the pipe is
    /// written at once and never needs to be.
    Direct(OwnedFd),
    Registered(pipe::Sender),
}

impl<'a> Feeder<'a> {
    fn new(stdin: OwnedFd, state: &'a [u8]) -> io::Result<Feeder<'a>> {
        let mut feeder = Feeder {
            pipe: Feed::Done,
            rest: state,
        };
        // Empty state: closing stdin at once is all rule 2 asks.
        if !state.is_empty() {
            set_nonblocking(&stdin)?;
            feeder.pipe = Feed::Direct(stdin);
            feeder.write_directly();
        }
        Ok(feeder)
    }

    fn is_done(&self) -> bool {
        matches!(self.pipe, Feed::Done)
    }

    fn write_directly(&mut self) {
        let Feed::Direct(stdin) = &self.pipe else {
            return;
        };
        loop {
            match nix::unistd::write(stdin, self.rest) {
                Ok(written) => {
                    self.rest = &self.rest[written..];
                    if self.rest.is_empty() || written == 0 {
                        self.pipe = Feed::Done;
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    self.pipe = Feed::Done;
                    return;
                }
            }
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) {
        loop {
            match &mut self.pipe {
                Feed::Done => return,
                Feed::Direct(_) => {
                    let Feed::Direct(stdin) = std::mem::replace(&mut self.pipe, Feed::Done) else {
                        return;
                    };
                    match sender(stdin) {
                        Ok(stdin) => self.pipe = Feed::Registered(stdin),
                        Err(_) => return,
                    }
                }
                Feed::Registered(stdin) => match Pin::new(stdin).poll_write(cx, self.rest) {
                    Poll::Pending => return,
                    Poll::Ready(Ok(written)) if written > 0 => {
                        self.rest = &self.rest[written..];
                        if self.rest.is_empty() {
                            // Closing it is the EOF.
                            self.pipe = Feed::Done;
                        }
                    }
                    Poll::Ready(_) => self.pipe = Feed::Done,
                },
            }
        }
    }

    fn stop(&mut self) {
        self.pipe = Feed::Done;
    }
}

/// Longest stderr line passed on; the rest of a longer line is dropped.
const STDERR_LINE_LIMIT: usize = 4096;

/// Most of stderr read at once without waiting: once the plugin has exited,
/// a helper that inherited stderr may write on without end.
const STDERR_READ_NOW_LIMIT: usize = 1024 * 1024;

/// Rule 5: streams stderr line by line to the sink and keeps a bounded tail.
struct StderrPump<'a> {
    pipe: ReadEnd,
    line: Vec<u8>,
    overlong: bool,
    sink: Option<&'a StderrSink>,
    tail: StderrTail,
}

impl<'a> StderrPump<'a> {
    fn new(pipe: OwnedFd, sink: Option<&'a StderrSink>, tail_lines: usize) -> io::Result<Self> {
        Ok(StderrPump {
            pipe: ReadEnd::new(pipe)?,
            line: Vec::new(),
            overlong: false,
            sink,
            tail: StderrTail::new(tail_lines),
        })
    }

    /// Reads what has arrived; never fails the run (a closed or broken
    /// stderr just ends the stream).
    fn poll(&mut self, cx: &mut Context<'_>) {
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let pipe = match self.pipe.registered() {
                Ok(Some(pipe)) => pipe,
                Ok(None) => return,
                Err(_) => return self.close(),
            };
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(pipe).poll_read(cx, &mut read) {
                Poll::Pending => return,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => self.split(read.filled()),
                Poll::Ready(_) => self.close(),
            }
        }
    }

    /// Reads what is in the pipe now, without waiting (and no more than
    /// `STDERR_READ_NOW_LIMIT`).
    fn read_now(&mut self) {
        let mut chunk = [0u8; 4096];
        let mut budget = STDERR_READ_NOW_LIMIT;
        while budget > 0 {
            let Some(fd) = self.pipe.fd() else {
                return;
            };
            match nix::unistd::read(fd, &mut chunk) {
                Ok(0) => self.close(),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.split(&chunk[..n]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => self.close(),
            }
        }
    }

    /// After the plugin exited and its output was read: what is in the pipe
    /// already, then it closes. A helper holding stderr cannot hold up the
    /// run (rule 8).
    fn finish(&mut self) {
        self.read_now();
        self.close();
    }

    fn close(&mut self) {
        self.pipe = ReadEnd::Closed;
        if !self.line.is_empty() || self.overlong {
            self.emit();
        }
    }

    fn split(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, complete) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            let room = STDERR_LINE_LIMIT.saturating_sub(self.line.len());
            self.line.extend_from_slice(&body[..body.len().min(room)]);
            self.overlong |= body.len() > room;
            if complete {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        if self.line.ends_with(b"\r") {
            self.line.pop();
        }
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.overlong {
            text.push_str(" [...]");
        }
        if let Some(sink) = self.sink {
            sink(&text);
        }
        self.tail.push(text);
        self.line.clear();
        self.overlong = false;
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
