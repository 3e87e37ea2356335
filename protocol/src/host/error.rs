//! What a run produced ([`RunOutput`]) or why it failed ([`RunError`]),
//! and the failures found inside a run before its stderr tail is attached.

use std::io;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::expiry::InfoProblem;
use crate::{State, Token, STATE_LIMIT, TOKEN_LIMIT};

/// What a successful run produced.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunOutput {
    /// Stdout with one trailing `\n` or `\r\n` removed; never empty, but
    /// for a `logout` run (rule 1: judged by its exit code alone).
    pub token: Token,
    /// Exactly what the plugin wrote on fd 3; empty if it wrote nothing
    /// (which clears the stored state).
    pub state: State,
    /// The last lines of stderr.
    pub stderr_tail: String,
    /// How long the run took.
    pub elapsed: Duration,
    /// When the token expires, as far as the host can tell (rule 10): the
    /// earlier of what the plugin reported on the info channel and the
    /// token's own `exp` if it is a JWT; `None` if neither says. A plugin
    /// can shorten a JWT's life, never lengthen it.
    pub expires_at: Option<SystemTime>,
    /// What the plugin reported on the info channel, as it reported it (a
    /// time already past included): `None` if it reported nothing usable.
    pub reported_expiry: Option<SystemTime>,
    /// Why the plugin's info was not taken as it stands, if it was not;
    /// the run succeeded all the same.
    pub info_problem: Option<InfoProblem>,
}

/// Why a run failed. In every case the caller's stored state must stay as it
/// was (rule 4); every variant that follows the plugin's start carries the
/// tail of its stderr, which `Display` shows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The plugin could not be started (rule 1): not found, not executable.
    #[error("could not start plugin `{program}`: {source}{}", spawn_hint(source))]
    Spawn {
        /// The program, as given.
        program: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The whole run took longer than the timeout; the plugin was stopped
    /// (rule 7).
    #[error(
        "plugin timed out after {} and was stopped{}",
        seconds(after),
        tail(stderr_tail)
    )]
    TimedOut {
        /// The timeout.
        after: Duration,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// More state on fd 3 than the protocol allows (rule 4).
    #[error("plugin wrote more than {limit} bytes of state on fd 3 (the protocol's limit) and was stopped{}", tail(stderr_tail))]
    StateTooLarge {
        /// [`STATE_LIMIT`](crate::STATE_LIMIT).
        limit: usize,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// More on stdout than the protocol allows (rule 3).
    #[error(
        "plugin wrote more than {limit} bytes on stdout (the token limit) and was stopped{}",
        tail(stderr_tail)
    )]
    TokenTooLarge {
        /// [`TOKEN_LIMIT`](crate::TOKEN_LIMIT).
        limit: usize,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Exit code 0, but nothing (or only a newline) on stdout (rule 3).
    #[error(
        "plugin exited successfully but printed no token on stdout{}",
        tail(stderr_tail)
    )]
    EmptyToken {
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// A non-zero exit code (rule 6).
    #[error("plugin failed with exit code {code}{}", tail(stderr_tail))]
    Exited {
        /// The exit code.
        code: i32,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// The plugin failed, but asked the host to keep the state it wrote
    /// (rule 4): it obtained something it must not lose, such as a rotated
    /// refresh token. The caller stores `state` in place of the old one
    /// ([`RunError::take_new_state`]) and still treats the run as failed.
    #[error(
        "plugin failed, and handed back an updated state to keep for its next run{}",
        tail(stderr_tail)
    )]
    FailedWithNewState {
        /// The state to keep.
        state: State,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// The plugin exited with the code the host offered for "a login is
    /// needed, and this run may not start one" (rule 6): a login in a run
    /// that may interact is what it takes.
    #[error("a login is needed, and the plugin was not allowed to start one in this run (it may not open a browser or prompt){}", tail(stderr_tail))]
    LoginNeeded {
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Killed by a signal (rule 6).
    #[error("plugin was killed by signal {}{}", signal_name(*signal), tail(stderr_tail))]
    Signaled {
        /// The signal's number.
        signal: i32,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// A process the plugin started outside its group still holds stdout or
    /// fd 3 after the drain windows (rule 8).
    #[error("plugin exited, but a process it started still holds its stdout or fd 3 open outside its process group: start helpers with their output redirected and without fd 3{}", tail(stderr_tail))]
    LeakedDescriptors {
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// [`run_until`]'s `cancel` completed; the plugin was stopped.
    #[error("the run was cancelled and the plugin stopped{}", tail(stderr_tail))]
    Cancelled {
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Talking to the plugin's pipes failed.
    #[error("I/O error while talking to the plugin: {source}{}", tail(stderr_tail))]
    Io {
        /// What the system said.
        #[source]
        source: io::Error,
        /// The last lines of its stderr.
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
            | RunError::LoginNeeded { stderr_tail }
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

pub(super) fn spawn_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => " (is it installed, and on PATH or given by full path?)",
        io::ErrorKind::PermissionDenied => " (is the file executable? try chmod +x)",
        _ if error.raw_os_error() == Some(libc::ETXTBSY) => {
            " (something still has the file open for writing: is it being installed?)"
        }
        _ => "",
    }
}

pub(super) fn seconds(duration: &Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

pub(super) fn tail(stderr_tail: &str) -> String {
    if stderr_tail.is_empty() {
        String::new()
    } else {
        let indented: Vec<String> = stderr_tail.lines().map(|l| format!("  {l}")).collect();
        format!("; its last words on stderr:\n{}", indented.join("\n"))
    }
}

pub(super) fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => format!("{} ({signal})", known.as_str()),
        Err(_) => signal.to_string(),
    }
}

/// What went wrong inside the run, before the stderr tail is attached.
pub(super) enum Failure {
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
    pub(super) fn into_error(self, stderr_tail: String, timeout: Duration) -> RunError {
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
