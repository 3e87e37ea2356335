//! How a broker runs its plugin ([`BrokerOptions`]) and how one caller
//! wants its token ([`TokenRequest`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authplug_protocol::host::{RunOptions, StderrSink};

/// How a [`Broker`] runs its plugin and judges its tokens. Start from
/// `BrokerOptions::default()` and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct BrokerOptions {
    /// Names the broker in logs and `Debug` output (the agent uses the
    /// profile name); default: the plugin program's file name. The full
    /// command line is never logged, since it may hold a client secret.
    pub label: Option<String>,
    /// Timeout, kill grace, extra environment and so on for each run. The
    /// broker sets `reason`, `interactive` and `stderr_sink` itself.
    pub run: RunOptions,
    /// A token counts as expired this long before it expires (as its
    /// plugin reported, or a JWT's `exp`), so the plugin is re-run (reason
    /// `refresh`) before a server would refuse it.
    pub skew: Duration,
    /// After a failed interactive run, runs started for interactive callers
    /// are non-interactive (`AUTHPLUG_INTERACTIVE=0`: a silent refresh still
    /// works, no browser opens) this long (at most a century), unless a
    /// caller forces one.
    pub interactive_cooldown: Duration,
    /// How often [`Broker::with_token`] and [`Broker::send`] get a new token
    /// and retry after "unauthorized".
    pub unauthorized_retries: u32,
    /// Refresh a token that callers use before it is due, in the
    /// background (non-interactive, reason `expiring`), so that nobody
    /// waits for the plugin: three quarters of the way to its refresh
    /// point, tried up to three times. Only tokens whose expiry is known
    /// (reported by the plugin, or a JWT's `exp`) and that a caller got (a
    /// token a background run obtained counts once a caller gets it): an
    /// idle profile is refreshed at most once after its last use. On by
    /// default.
    pub refresh_ahead: bool,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            label: None,
            run: RunOptions::default(),
            skew: Duration::from_secs(60),
            interactive_cooldown: Duration::from_secs(60),
            unauthorized_retries: 1,
            refresh_ahead: true,
        }
    }
}

impl fmt::Debug for BrokerOptions {
    /// Leaves out the values of `run.env`, which may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<_> = self.run.env.iter().map(|(name, _)| name).collect();
        f.debug_struct("BrokerOptions")
            .field("label", &self.label)
            .field("timeout", &self.run.timeout)
            .field("kill_grace", &self.run.kill_grace)
            .field("env_names", &env_names)
            .field("skew", &self.skew)
            .field("interactive_cooldown", &self.interactive_cooldown)
            .field("unauthorized_retries", &self.unauthorized_retries)
            .field("refresh_ahead", &self.refresh_ahead)
            .finish_non_exhaustive()
    }
}

/// How one caller wants its token.
#[derive(Clone)]
pub struct TokenRequest {
    /// May a run started for this caller open a browser or prompt
    /// (`AUTHPLUG_INTERACTIVE=1`)? Not during the cool-down after a failed
    /// interactive run, unless `force`. Callers joining a run already under
    /// way get that run's result, whichever way it was started.
    pub interactive: bool,
    /// Start an interactive run even during the cool-down after a failed one.
    pub force: bool,
    /// Receives the plugin's stderr lines while this caller waits for a run,
    /// starting with the lines the run printed before the caller joined.
    /// Called with the broker's lock held: it must not block.
    pub on_stderr: Option<StderrSink>,
    /// See the run this caller waits for to its end even if the caller
    /// stops waiting, its token then cached for the next caller: for a
    /// caller with a short time limit (an MCP client's headers hook) whose
    /// login must not be lost when it is cut off.
    pub keep_running: bool,
}

impl Default for TokenRequest {
    fn default() -> Self {
        TokenRequest {
            interactive: true,
            force: false,
            on_stderr: None,
            keep_running: false,
        }
    }
}

impl TokenRequest {
    /// Interactive, not forced, no stderr sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a run started for this caller may open a browser or prompt.
    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    /// Start an interactive run even during the cool-down.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Whether the run this caller waits for goes on when it stops waiting
    /// ([`TokenRequest::keep_running`]).
    pub fn keep_running(mut self, keep_running: bool) -> Self {
        self.keep_running = keep_running;
        self
    }

    /// Sees each stderr line of the run this caller waits for (the lines
    /// printed before it joined first).
    pub fn on_stderr(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_stderr = Some(Arc::new(sink));
        self
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("interactive", &self.interactive)
            .field("force", &self.force)
            .field("keep_running", &self.keep_running)
            .field("on_stderr", &self.on_stderr.as_ref().map(|_| "Fn(&str)"))
            .finish()
    }
}
