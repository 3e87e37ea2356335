//! The [`Broker`] handle: one plugin command, its token and state in memory,
//! one run at a time shared by every caller.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use authplug_protocol::host::{self, PluginCommand, RunError, RunOptions, StderrSink};
use authplug_protocol::{Reason, State, Token};
use tokio::sync::{broadcast, oneshot, watch};

use crate::jwt;

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
    /// A JWT counts as expired this long before its `exp`, so the plugin is
    /// re-run (reason `refresh`) before a server would refuse it.
    pub skew: Duration,
    /// After a failed interactive run, runs started for interactive callers
    /// are non-interactive (`AUTHPLUG_INTERACTIVE=0`: a silent refresh still
    /// works, no browser opens) this long (at most a century), unless a
    /// caller forces one.
    pub interactive_cooldown: Duration,
    /// How often [`Broker::with_token`] and [`Broker::send`] get a new token
    /// and retry after "unauthorized".
    pub unauthorized_retries: u32,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            label: None,
            run: RunOptions::default(),
            skew: Duration::from_secs(60),
            interactive_cooldown: Duration::from_secs(60),
            unauthorized_retries: 1,
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
}

impl Default for TokenRequest {
    fn default() -> Self {
        TokenRequest {
            interactive: true,
            force: false,
            on_stderr: None,
        }
    }
}

impl TokenRequest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

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
            .field("on_stderr", &self.on_stderr.as_ref().map(|_| "Fn(&str)"))
            .finish()
    }
}

/// Why [`Broker::token`] has no token to give. Cheap to clone: every caller
/// waiting on one run gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The plugin run failed; the stored state is unchanged, unless the
    /// plugin asked for its new one to be kept
    /// ([`RunError::FailedWithNewState`], whose state the broker took).
    #[error("{0}")]
    Run(Arc<RunError>),
    /// A run after a rejection handed out the rejected token again (its new
    /// state is kept).
    #[error("the plugin returned the very token the server just rejected, so retrying cannot help: its login is probably revoked or its server-side session broken (check the plugin's configuration, or log out and in again)")]
    SameTokenAfterReject,
    /// A run for an interactive caller, started non-interactively because
    /// an interactive one failed less than the cool-down ago, failed too.
    #[error("{error}\nAn interactive login was not tried: after a failed one they are refused for the rest of the cool-down ({}s); to start one anyway, use `authplug token --force` (`TokenRequest::force` in the library)", remaining.as_secs().max(1))]
    CoolingDown {
        /// Left of the cool-down when the run ended.
        remaining: Duration,
        /// How the non-interactive run failed.
        error: Box<BrokerError>,
    },
    /// The run's task ended without a result (a panic in an embedding
    /// daemon's stderr callback, or the runtime shutting down).
    #[error("the plugin run was stopped before it finished; try again")]
    Aborted,
}

impl BrokerError {
    /// The message without the plugin's stderr tail, for a caller that
    /// showed the plugin's stderr as it came ([`TokenRequest::on_stderr`]).
    pub fn summary(&self) -> String {
        match self {
            BrokerError::Run(error) => error.summary(),
            BrokerError::CoolingDown { error, .. } => {
                let full = self.to_string();
                let inner = error.to_string();
                match full.strip_prefix(&inner) {
                    Some(rest) => format!("{}{rest}", error.summary()),
                    None => full,
                }
            }
            other => other.to_string(),
        }
    }
}

/// What the broker holds, without secrets: for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    pub has_token: bool,
    /// The cached token's `exp`, if it is a JWT with one.
    pub expires_at: Option<SystemTime>,
    /// When the broker re-runs the plugin ahead of `expires_at`.
    pub refresh_at: Option<SystemTime>,
    pub has_state: bool,
    /// A run is under way, or a cancelled one is still being stopped.
    pub running: bool,
    /// Callers waiting on that run.
    pub waiters: usize,
    /// The last token was rejected and no new one has been obtained yet.
    pub rejected: bool,
    /// Runs finished (successful or not) since the broker was made; a run
    /// cancelled because every caller went away is not one.
    pub runs: u64,
    pub last_run: Option<RunRecord>,
    /// The message of the last failed run, until a run succeeds.
    pub last_error: Option<String>,
    /// Interactive runs are refused until then (unless forced).
    pub cooldown_until: Option<SystemTime>,
}

/// One finished run, for [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunRecord {
    pub finished_at: SystemTime,
    pub reason: String,
    pub interactive: bool,
    pub ok: bool,
    pub elapsed: Duration,
}

/// Gets tokens from one plugin, keeping its token and state in memory only.
///
/// Cheap to clone; all clones share the same cache, state and run. See the
/// crate documentation for an example.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("label", &self.inner.label)
            .field("status", &self.status())
            .finish()
    }
}

struct Inner {
    command: PluginCommand,
    label: String,
    options: BrokerOptions,
    shared: Mutex<Shared>,
    stderr: broadcast::Sender<String>,
}

#[derive(Default)]
struct Shared {
    cached: Option<Cached>,
    state: State,
    /// The last rejected token, until a run returns a different one; while
    /// set, runs get reason `rejected`.
    rejected: Option<Token>,
    flight: Option<Flight>,
    next_flight_id: u64,
    cooldown_until: Option<(Instant, SystemTime)>,
    runs: u64,
    last_run: Option<RunRecord>,
    last_error: Option<String>,
}

struct Cached {
    token: Token,
    expires_at: Option<SystemTime>,
    refresh_at: Option<SystemTime>,
}

impl Cached {
    fn new(token: Token, skew: Duration, now: SystemTime) -> Cached {
        let expires_at = jwt::expiry(token.as_bytes());
        let refresh_at = expires_at.map(|exp| refresh_time(exp, skew, now));
        Cached {
            token,
            expires_at,
            refresh_at,
        }
    }

    fn is_fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.map_or(true, |at| now < at)
    }
}

/// `skew` before `exp`; but a token that arrives already inside the skew
/// window is kept for half its remaining life, or every call would run the
/// plugin again.
fn refresh_time(exp: SystemTime, skew: Duration, now: SystemTime) -> SystemTime {
    let ahead = exp.checked_sub(skew).unwrap_or(SystemTime::UNIX_EPOCH);
    if ahead > now {
        ahead
    } else {
        let remaining = exp.duration_since(now).unwrap_or_default();
        now + remaining / 2
    }
}

/// Lines of the current run kept for callers that join it late (the login
/// URL is usually printed first).
const REPLAY_LINES: usize = 64;

/// A run's result, once it has one.
type FlightResult = watch::Receiver<Option<Result<Token, BrokerError>>>;

struct Flight {
    id: u64,
    result: FlightResult,
    waiters: usize,
    /// Tells the run's task that every caller went away; `None` once sent.
    /// The flight stays until the plugin has exited and been reaped, so
    /// nobody starts a second run with the same state while the first still
    /// lives (it may have spent a refresh token already).
    cancel: Option<oneshot::Sender<()>>,
    lines: VecDeque<String>,
    listeners: Vec<(u64, StderrSink)>,
    next_listener: u64,
}

impl Flight {
    fn is_cancelling(&self) -> bool {
        self.cancel.is_none()
    }
}

/// Held by each caller waiting on a run; the last one to go cancels it.
struct Waiter {
    inner: Arc<Inner>,
    flight_id: u64,
    listener: Option<u64>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut shared = self.inner.lock();
        let Some(flight) = shared.flight.as_mut() else {
            return;
        };
        if flight.id != self.flight_id {
            return;
        }
        if let Some(listener) = self.listener {
            flight.listeners.retain(|(id, _)| *id != listener);
        }
        flight.waiters -= 1;
        if flight.waiters == 0 {
            if let Some(cancel) = flight.cancel.take() {
                let _ = cancel.send(());
            }
            tracing::info!(plugin = %self.inner.label, "every caller went away; cancelling the plugin run");
        }
    }
}

impl Broker {
    pub fn new(command: PluginCommand, options: BrokerOptions) -> Broker {
        let (stderr, _) = broadcast::channel(256);
        let label = options.label.clone().unwrap_or_else(|| {
            std::path::Path::new(command.program())
                .file_name()
                .unwrap_or(command.program())
                .to_string_lossy()
                .into_owned()
        });
        Broker {
            inner: Arc::new(Inner {
                command,
                label,
                options,
                shared: Mutex::new(Shared::default()),
                stderr,
            }),
        }
    }

    /// A broker that starts from state kept elsewhere (say, restored by the
    /// embedding program from its own secure storage).
    pub fn with_state(command: PluginCommand, options: BrokerOptions, state: State) -> Broker {
        let broker = Broker::new(command, options);
        broker.inner.lock().state = state;
        broker
    }

    pub fn command(&self) -> &PluginCommand {
        &self.inner.command
    }

    pub fn options(&self) -> &BrokerOptions {
        &self.inner.options
    }

    /// The cached token, or a new one from a plugin run (interactive).
    ///
    /// Runs are spawned on the current Tokio runtime: call this inside one
    /// (it panics otherwise, as `tokio::spawn` does).
    pub async fn token(&self) -> Result<Token, BrokerError> {
        self.token_with(TokenRequest::default()).await
    }

    /// Like [`Broker::token`], with per-call choices.
    ///
    /// Callers that arrive while a run is under way wait for it and get its
    /// result, whether it was started interactive or not. If every waiting
    /// caller is dropped, the run is cancelled and the plugin's process group
    /// stopped (TERM, up to `kill_grace` for the plugin to exit, KILL,
    /// reaped); a cancelled run changes no state, starts no cool-down and is
    /// not counted in [`Status::runs`]. A caller arriving meanwhile waits
    /// until the plugin is gone (no longer than it really takes to die),
    /// then starts a fresh run, so two runs never share a state; if the
    /// plugin had finished just before the cancel, its result counts.
    pub async fn token_with(&self, request: TokenRequest) -> Result<Token, BrokerError> {
        loop {
            match self.join_or_start(&request).await {
                Ok(outcome) => return outcome,
                // It ends with a result if it finished just before it was
                // cancelled (then the cache has it), or without one.
                Err(mut dying) => {
                    let _ = dying.wait_for(Option::is_some).await;
                }
            }
        }
    }

    /// The cached token, or the result of the run under way or a new one;
    /// if the run under way is being cancelled, what to wait on before
    /// asking again.
    async fn join_or_start(
        &self,
        request: &TokenRequest,
    ) -> Result<Result<Token, BrokerError>, FlightResult> {
        let (waiter, mut result) = {
            let mut shared = self.inner.lock();
            if let Some(cached) = &shared.cached {
                if cached.is_fresh(SystemTime::now()) {
                    return Ok(Ok(cached.token.clone()));
                }
            }
            if let Some(dying) = shared.flight.as_ref().filter(|f| f.is_cancelling()) {
                return Err(dying.result.clone());
            }
            if shared.flight.is_none() {
                let cooling_down = shared
                    .cooldown_until
                    .map(|(until, _)| until)
                    .filter(|until| Instant::now() < *until);
                let mode = match cooling_down {
                    Some(until) if request.interactive && !request.force => {
                        RunMode::CoolingDown { until }
                    }
                    _ if request.interactive => RunMode::Interactive,
                    _ => RunMode::Quiet,
                };
                self.start_flight(&mut shared, mode);
            }
            let Some(flight) = shared.flight.as_mut() else {
                unreachable!("a flight was just started");
            };
            flight.waiters += 1;
            let listener = request.on_stderr.clone().map(|sink| {
                for line in &flight.lines {
                    sink(line);
                }
                let id = flight.next_listener;
                flight.next_listener += 1;
                flight.listeners.push((id, sink));
                id
            });
            let waiter = Waiter {
                inner: self.inner.clone(),
                flight_id: flight.id,
                listener,
            };
            (waiter, flight.result.clone())
        };
        let outcome = match result.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or(Err(BrokerError::Aborted)),
            // The task ended without sending: it panicked or the runtime is
            // shutting down.
            Err(_) => Err(BrokerError::Aborted),
        };
        drop(waiter);
        Ok(outcome)
    }

    /// Reports that a server refused `token` (say, HTTP 401). Clears the
    /// cached token only if it is still `token` (compare-and-clear), so many
    /// callers reporting the same stale token cause one re-run, with reason
    /// `rejected`. Returns whether this call cleared it. The next
    /// [`Broker::token`] runs the plugin.
    pub fn reject(&self, token: &Token) -> bool {
        let mut shared = self.inner.lock();
        let matches = shared
            .cached
            .as_ref()
            .is_some_and(|cached| cached.token == *token);
        if matches {
            if let Some(cached) = shared.cached.take() {
                shared.rejected = Some(cached.token);
            }
            tracing::info!(plugin = %self.inner.label, "token rejected; the next request re-runs the plugin");
        }
        matches
    }

    /// Forgets the cached token (not the state): the next call runs the
    /// plugin with reason `refresh`.
    pub fn invalidate(&self) {
        self.inner.lock().cached = None;
    }

    /// The plugin's stderr lines from every run, as they arrive. A slow
    /// receiver misses lines (see [`broadcast::error::RecvError::Lagged`]).
    pub fn stderr_lines(&self) -> broadcast::Receiver<String> {
        self.inner.stderr.subscribe()
    }

    /// What the broker holds, without secrets.
    pub fn status(&self) -> Status {
        let shared = self.inner.lock();
        let now = Instant::now();
        Status {
            has_token: shared.cached.is_some(),
            expires_at: shared.cached.as_ref().and_then(|c| c.expires_at),
            refresh_at: shared.cached.as_ref().and_then(|c| c.refresh_at),
            has_state: !shared.state.is_empty(),
            running: shared.flight.is_some(),
            waiters: shared.flight.as_ref().map_or(0, |f| f.waiters),
            rejected: shared.rejected.is_some(),
            runs: shared.runs,
            last_run: shared.last_run.clone(),
            last_error: shared.last_error.clone(),
            cooldown_until: shared
                .cooldown_until
                .filter(|(until, _)| *until > now)
                .map(|(_, at)| at),
        }
    }

    fn start_flight(&self, shared: &mut Shared, mode: RunMode) {
        let id = shared.next_flight_id;
        shared.next_flight_id += 1;
        let reason = if shared.rejected.is_some() {
            Reason::Rejected
        } else {
            Reason::for_state(&shared.state)
        };
        let (sender, receiver) = watch::channel(None);
        let (cancel, cancelled) = oneshot::channel();
        tokio::spawn(run_flight(
            self.inner.clone(),
            id,
            shared.state.clone(),
            reason,
            mode,
            sender,
            cancelled,
        ));
        shared.flight = Some(Flight {
            id,
            result: receiver,
            waiters: 0,
            cancel: Some(cancel),
            lines: VecDeque::new(),
            listeners: Vec::new(),
            next_listener: 0,
        });
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Every update under this lock is a few assignments that cannot
        // panic half-way, so a poisoned lock still holds consistent data.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_stderr_line(&self, flight_id: u64, line: &str) {
        let mut shared = self.lock();
        if let Some(flight) = shared.flight.as_mut().filter(|f| f.id == flight_id) {
            if flight.lines.len() == REPLAY_LINES {
                flight.lines.pop_front();
            }
            flight.lines.push_back(line.to_owned());
            for (_, sink) in &flight.listeners {
                sink(line);
            }
        }
        let _ = self.stderr.send(line.to_owned());
    }
}

/// Ends the flight when its task ends, however it ends (finished,
/// cancelled, panicked, or dropped with the runtime).
struct FlightGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut shared = self.inner.lock();
        if shared.flight.as_ref().is_some_and(|f| f.id == self.id) {
            shared.flight = None;
        }
    }
}

/// Whether a failed run left the state as it was: all but a run whose only
/// fault was its token, and one that handed back a state to keep.
fn state_unchanged_by(error: &BrokerError) -> bool {
    match error {
        BrokerError::SameTokenAfterReject => false,
        BrokerError::Run(error) => !matches!(**error, RunError::FailedWithNewState { .. }),
        BrokerError::CoolingDown { error, .. } => state_unchanged_by(error),
        _ => true,
    }
}

/// Longer cool-downs are cut to this.
const LONGEST_COOLDOWN: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// How a run was started.
#[derive(Clone, Copy)]
enum RunMode {
    Interactive,
    /// For non-interactive callers.
    Quiet,
    /// For an interactive caller, but non-interactive since an interactive
    /// run failed recently: its failure says so.
    CoolingDown {
        until: Instant,
    },
}

async fn run_flight(
    inner: Arc<Inner>,
    id: u64,
    state: State,
    reason: Reason,
    mode: RunMode,
    result: watch::Sender<Option<Result<Token, BrokerError>>>,
    cancelled: oneshot::Receiver<()>,
) {
    let interactive = matches!(mode, RunMode::Interactive);
    let guard = FlightGuard {
        inner: inner.clone(),
        id,
    };
    let mut options = inner.options.run.clone();
    options.reason = Some(reason.clone());
    options.interactive = interactive;
    let sink_owner = Arc::downgrade(&inner);
    options.stderr_sink = Some(Arc::new(move |line: &str| {
        if let Some(inner) = sink_owner.upgrade() {
            inner.on_stderr_line(id, line);
        }
    }));
    tracing::info!(plugin = %inner.label, %reason, interactive, "running plugin");
    // Returns once the plugin is gone, cancelled or not; a run that
    // finished as its last caller left still counts.
    let cancel = async {
        let _ = cancelled.await;
    };
    let outcome = host::run_until(&inner.command, &state, &options, cancel).await;
    drop(state);
    if let Err(RunError::Cancelled { .. }) = outcome {
        tracing::info!(plugin = %inner.label, "cancelled plugin run stopped");
        // The guard ends the flight; callers that came meanwhile start anew.
        drop(guard);
        return;
    }

    // From here on there is no await: once the plugin has succeeded its new
    // state is kept even if every caller has just gone away, since the old
    // state may no longer be valid (a rotated refresh token).
    let now = SystemTime::now();
    let mut shared = inner.lock();
    let (record_ok, elapsed, answer) = match outcome {
        Ok(output) => {
            let elapsed = output.elapsed;
            // The plugin succeeded, so its state is the current one even if
            // its token is useless: the old state may be spent.
            shared.state = output.state;
            if shared.rejected.as_ref() == Some(&output.token) {
                (false, elapsed, Err(BrokerError::SameTokenAfterReject))
            } else {
                shared.rejected = None;
                let cached = Cached::new(output.token, inner.options.skew, now);
                let token = cached.token.clone();
                shared.cached = Some(cached);
                (true, elapsed, Ok(token))
            }
        }
        Err(mut error) => {
            // Rule 4's exception: the plugin failed but obtained something
            // it must not lose (a rotated refresh token), and asked for its
            // new state to be kept. The error goes on without it.
            if let Some(new_state) = error.take_new_state() {
                shared.state = new_state;
            }
            (
                false,
                Duration::ZERO,
                Err(BrokerError::Run(Arc::new(error))),
            )
        }
    };
    let answer = match (answer, mode) {
        (Err(error), RunMode::CoolingDown { until }) => Err(BrokerError::CoolingDown {
            remaining: until.saturating_duration_since(Instant::now()),
            error: Box::new(error),
        }),
        (answer, _) => answer,
    };
    match &answer {
        Ok(_) => {
            shared.last_error = None;
            shared.cooldown_until = None;
            tracing::info!(plugin = %inner.label, elapsed_ms = elapsed.as_millis() as u64, "plugin run succeeded");
        }
        Err(error) => {
            shared.last_error = Some(error.to_string());
            // Only a run that may have needed the user: a cool-down run
            // failing does not prolong the cool-down.
            if interactive {
                // Any Duration may be configured; the clocks cannot take
                // them all.
                let cooldown = inner.options.interactive_cooldown.min(LONGEST_COOLDOWN);
                if let (Some(until), Some(at)) = (
                    Instant::now().checked_add(cooldown),
                    now.checked_add(cooldown),
                ) {
                    shared.cooldown_until = Some((until, at));
                }
            }
            if state_unchanged_by(error) {
                tracing::warn!(plugin = %inner.label, %error, "plugin run failed; state kept as it was");
            } else {
                tracing::warn!(plugin = %inner.label, %error, "plugin run failed or refused; its new state kept");
            }
        }
    }
    shared.runs += 1;
    shared.last_run = Some(RunRecord {
        finished_at: now,
        reason: reason.to_string(),
        interactive,
        ok: record_ok,
        elapsed,
    });
    // The flight ends with the same lock that stored its outcome, and
    // before its result is out, so a caller that sees the result and asks
    // again finds the cache, not this flight.
    if shared.flight.as_ref().is_some_and(|f| f.id == id) {
        shared.flight = None;
    }
    drop(shared);
    drop(guard);
    result.send_replace(Some(answer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_time_is_skew_before_exp_but_never_immediate() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let skew = Duration::from_secs(60);
        let exp = now + Duration::from_secs(3600);
        assert_eq!(refresh_time(exp, skew, now), exp - skew);
        // Already inside the skew window: half the remaining life.
        let short = now + Duration::from_secs(40);
        assert_eq!(
            refresh_time(short, skew, now),
            now + Duration::from_secs(20)
        );
        // Already expired: due now.
        let past = now - Duration::from_secs(5);
        assert_eq!(refresh_time(past, skew, now), now);
    }

    #[test]
    fn status_and_debug_show_no_secret() {
        let broker = Broker::with_state(
            PluginCommand::new("true"),
            BrokerOptions::default(),
            State::from("refresh-secret-42"),
        );
        broker.inner.lock().cached = Some(Cached::new(
            Token::from("opaque-secret-17"),
            Duration::from_secs(60),
            SystemTime::now(),
        ));
        let shown = format!("{broker:?}");
        assert!(
            !shown.contains("secret-42") && !shown.contains("secret-17"),
            "{shown}"
        );
        assert!(shown.contains("has_token: true"), "{shown}");
        let mut options = BrokerOptions::default();
        options.run.env = vec![("CLIENT_SECRET".into(), "hunter2".into())];
        let shown = format!("{options:?}");
        assert!(
            shown.contains("CLIENT_SECRET") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
