//! How to run a plugin: [`RunOptions`], and the sink for its stderr lines.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Reason;

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
    /// Start the plugin in a session of its own whose controlling terminal
    /// is this one (a pseudo-terminal's path), instead of in a group of the
    /// host's session: what a checker uses to see whether a run that may
    /// not interact writes to its terminal (`authplug check`). The session's
    /// process group is the plugin's, so rule 7 stops it the same way.
    /// Overrides `foreground_terminal`. Linux with glibc only: elsewhere a
    /// run with it fails to start ([`RunError::Spawn`](super::RunError::Spawn)).
    pub session_terminal: Option<PathBuf>,
    /// Offer the plugin to keep the state of a failed run (rule 4): set
    /// `AUTHPLUG_KEEP_STATE_EXIT`, and turn a run that exits with that code
    /// after writing a state into [`RunError::FailedWithNewState`]. A host
    /// that cannot store such a state must set this to `false`: the plugin
    /// then knows not to rely on it.
    pub keep_state_on_failure: bool,
    /// Offer the plugin the info channel (rule 10): a pipe on fd 4, named
    /// in `AUTHPLUG_INFO_FD`, on which it may say when its token expires
    /// ([`RunOutput::expires_at`](super::RunOutput::expires_at)).
    pub offer_info: bool,
    /// Tell a needed login from other failures (rule 6): set
    /// `AUTHPLUG_LOGIN_NEEDED_EXIT`, and turn a run that exits with that
    /// code into [`RunError::LoginNeeded`](super::RunError::LoginNeeded).
    pub offer_login_needed: bool,
    /// With reason `rejected`: the refusing server's `WWW-Authenticate`
    /// challenge, passed on as `AUTHPLUG_CHALLENGE` (rule 1) if it is
    /// [`usable`](crate::challenge::usable); otherwise ignored.
    pub challenge: Option<String>,
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
            session_terminal: None,
            keep_state_on_failure: true,
            offer_info: true,
            offer_login_needed: true,
            challenge: None,
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
            .field("session_terminal", &self.session_terminal)
            .field("keep_state_on_failure", &self.keep_state_on_failure)
            .field("offer_info", &self.offer_info)
            .field("offer_login_needed", &self.offer_login_needed)
            .field("challenge", &self.challenge)
            .finish()
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
