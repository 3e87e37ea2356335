//! One run, start to finish: the environment (rule 1), the start (with
//! the ETXTBSY retry), the timeout and cancellation (rule 7), and the
//! judgement of the outcome (rules 3, 4, 6 and 10).

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use super::command::PluginCommand;
use super::error::{Failure, RunError, RunOutput};
use super::exchange::{enlarge_pipe, Exchange, DEFAULT_PIPE_SIZE};
use super::info::{judge_info, InfoPump};
use super::options::RunOptions;
use crate::secret::SecretBuf;
use crate::spawn::{PluginProcess, Spawn, Terminal};
use crate::{
    Reason, State, Token, ENV_CHALLENGE, ENV_INFO_FD, ENV_INTERACTIVE, ENV_KEEP_STATE_EXIT,
    ENV_LOGIN_NEEDED_EXIT, ENV_PROTOCOL, ENV_REASON, INFO_FD, KEEP_STATE_EXIT_CODE,
    LOGIN_NEEDED_EXIT_CODE, PROTOCOL_VERSION,
};

/// Runs `command` once with `state` on its stdin (rules 1 to 10).
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
    // Rule 10: the info channel, when offered.
    let (info_pipe, info_pipe_for_plugin) = if options.offer_info {
        let (host, plugin) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|errno| spawn_error(io::Error::from(errno)))?;
        (Some(host), Some(plugin))
    } else {
        (None, None)
    };
    // Dropped last: the terminal comes back once the run is over.
    let mut terminal = (options.foreground_terminal && options.session_terminal.is_none())
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
    let login_needed_exit = LOGIN_NEEDED_EXIT_CODE.to_string();
    let info_fd = INFO_FD.to_string();
    // Rule 1: a refusing server's challenge goes with `rejected` only, and
    // only if it is short visible ASCII.
    let challenge = (options.challenge.as_deref())
        .filter(|value| reason == Reason::Rejected && crate::challenge::usable(value));
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
        .chain(
            options
                .offer_info
                .then(|| (OsStr::new(ENV_INFO_FD), OsStr::new(&info_fd))),
        )
        .chain(options.offer_login_needed.then(|| {
            (
                OsStr::new(ENV_LOGIN_NEEDED_EXIT),
                OsStr::new(&login_needed_exit),
            )
        }))
        .chain(challenge.map(|value| (OsStr::new(ENV_CHALLENGE), OsStr::new(value))))
        .collect();
    // What is not offered is not passed on either, though the host's own
    // environment may have it (a host run as a plugin, say): rules 4 and 10.
    let not_offered: Vec<&OsStr> = [
        (!options.keep_state_on_failure).then_some(OsStr::new(ENV_KEEP_STATE_EXIT)),
        (!options.offer_info).then_some(OsStr::new(ENV_INFO_FD)),
        (!options.offer_login_needed).then_some(OsStr::new(ENV_LOGIN_NEEDED_EXIT)),
        challenge.is_none().then_some(OsStr::new(ENV_CHALLENGE)),
    ]
    .into_iter()
    .flatten()
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
            env_remove: &not_offered,
            state_fd: state_pipe_for_plugin.as_fd(),
            info_fd: info_pipe_for_plugin.as_ref().map(AsFd::as_fd),
            terminal: terminal.as_ref().map(Terminal::fd),
            session_terminal: options.session_terminal.as_deref(),
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
    // The plugin has its copies; ours must close so the pipes reach EOF.
    drop((state_pipe_for_plugin, info_pipe_for_plugin));
    if let Some(terminal) = &mut terminal {
        terminal.lent_to(plugin.pid());
    }
    let exchange = match Exchange::new(pipes, state_pipe, info_pipe, state, options) {
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
            let (stdout, new_state, stderr_tail, info) = exchange.into_outputs();
            // Only now: the drain window's KILL (rule 8) was the last signal.
            plugin.reap();
            judge(
                status,
                stdout,
                new_state,
                stderr_tail,
                &info,
                Judging {
                    keep_state_offered: options.keep_state_on_failure,
                    login_needed_offered: options.offer_login_needed,
                    logout: reason == Reason::Logout,
                },
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
pub(super) const TEXT_BUSY_PATIENCE: Duration = Duration::from_millis(128);

/// A started plugin and the host's ends of its pipes. The fields drop in
/// this order, so a cancelled run signals the group before its pipes close.
pub(super) struct Running<'a> {
    pub(super) plugin: PluginProcess,
    pub(super) exchange: Exchange<'a>,
}

/// What a run is judged by, besides its exit and output.
pub(super) struct Judging {
    /// `AUTHPLUG_KEEP_STATE_EXIT` was offered (rule 4).
    pub(super) keep_state_offered: bool,
    /// `AUTHPLUG_LOGIN_NEEDED_EXIT` was offered (rule 6).
    pub(super) login_needed_offered: bool,
    /// A `logout` run (rule 1): judged by its exit code alone, so an empty
    /// token is no failure.
    pub(super) logout: bool,
}

/// The rest of rule 3, 4 and 6 once the plugin has exited and its output is
/// read.
pub(super) fn judge(
    status: ExitStatus,
    mut stdout: SecretBuf,
    new_state: SecretBuf,
    stderr_tail: String,
    info: &InfoPump,
    judging: Judging,
    elapsed: Duration,
) -> Result<RunOutput, RunError> {
    let keep_state_offered = judging.keep_state_offered;
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
        Some(LOGIN_NEEDED_EXIT_CODE) if judging.login_needed_offered => {
            return Err(RunError::LoginNeeded { stderr_tail })
        }
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
    if trimmed == 0 && !judging.logout {
        return Err(RunError::EmptyToken { stderr_tail });
    }
    let token = Token::new(stdout.into_vec());
    let info = judge_info(info, token.as_bytes(), SystemTime::now());
    Ok(RunOutput {
        token,
        state: State::new(new_state.into_vec()),
        stderr_tail,
        elapsed,
        expires_at: info.expires_at,
        reported_expiry: info.reported,
        info_problem: info.problem,
    })
}

/// Rule 4's one exception to "a failure keeps the old state", decided here
/// and nowhere else: the host offered it (`AUTHPLUG_KEEP_STATE_EXIT`), the
/// plugin exited with exactly that code, and it wrote a state. Nothing
/// written means nothing to keep: a failed run never clears the state. Any
/// other failure (another code, a signal, a limit, the timeout) keeps the
/// old state, whatever was written.
pub(super) fn kept_on_failure(status: ExitStatus, new_state: &SecretBuf, offered: bool) -> bool {
    offered && status.code() == Some(KEEP_STATE_EXIT_CODE) && !new_state.as_slice().is_empty()
}
