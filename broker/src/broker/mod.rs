//! The [`Broker`] handle: one plugin command, its token and state in memory,
//! one run at a time shared by every caller.
//!
//! Here: the handle and what it shares under one lock (`Shared`). Beside
//! it: `options` (how it runs its plugin, how a caller asks), `cache` (when
//! a cached token is still good), `ahead` (the background refresh before
//! it is not), `flight` (the shared run and what its outcome does to the
//! state), `cooldown` (when interactive runs are refused), `issued`,
//! `error` and `status` (what callers see).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use authplug_protocol::host::PluginCommand;
use authplug_protocol::{Reason, State, Token};
use tokio::sync::{broadcast, oneshot, watch};

mod ahead;
mod cache;
mod cooldown;
mod error;
mod flight;
mod issued;
mod logout;
mod options;
mod status;

pub use error::{BrokerError, FailureKind};
pub use issued::Issued;
pub use logout::LogoutOutcome;
pub use options::{BrokerOptions, TokenRequest};
pub use status::{RunRecord, Status};

use ahead::Ahead;
use cache::Cached;
use cooldown::{Cooldown, RunMode};
use flight::{run_flight, Flight, FlightResult, Launch, Waiter, REPLAY_LINES};

/// What a caller found: an answer (from the cache or a run), or a run being
/// cancelled, to wait out before asking again.
enum Joined {
    Answered(Result<Issued, BrokerError>),
    Dying(FlightResult),
    /// A background run that an interactive caller joined (its token had
    /// passed its refresh point meanwhile) failed: ask again, and start a
    /// run of its own, which may log in.
    BackgroundFailed(BrokerError),
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
    /// The refusing server's challenge, if it gave one: passed to the
    /// `rejected` runs (`AUTHPLUG_CHALLENGE`, rule 1).
    challenge: Option<String>,
    flight: Option<Flight>,
    next_flight_id: u64,
    cooldown: Cooldown,
    runs: u64,
    last_run: Option<RunRecord>,
    last_error: Option<String>,
    /// Bumped by each logout: a run started before it keeps nothing.
    generation: u64,
    /// The background refresh plan of the cached token.
    ahead: Ahead,
}

impl Broker {
    /// A broker for `command`, holding no token and no state yet.
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

    /// The plugin command it runs.
    pub fn command(&self) -> &PluginCommand {
        &self.inner.command
    }

    /// The options it was made with.
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
        self.get(request).await.map(|issued| issued.token)
    }

    /// Like [`Broker::token_with`], with the token's expiry as far as the
    /// broker knows it, for a caller that passes it on.
    ///
    /// A token that has been asked for is refreshed in the background
    /// before it is due ([`BrokerOptions::refresh_ahead`]): callers keep
    /// getting it at once meanwhile. One whose refresh point passes while
    /// that run is under way waits for it; if it fails, an interactive
    /// caller starts a run of its own (a login, say), a quiet one gets its
    /// error.
    pub async fn get(&self, request: TokenRequest) -> Result<Issued, BrokerError> {
        let mut background_failures = 0;
        loop {
            match self.join_or_start(&request).await {
                Joined::Answered(outcome) => return outcome,
                // It ends with a result if it finished just before it was
                // cancelled (then the cache has it), or without one.
                Joined::Dying(mut dying) => {
                    let _ = dying.wait_for(Option::is_some).await;
                }
                // Once is enough: the next run is this caller's own (no
                // background run starts for a token past its refresh
                // point).
                Joined::BackgroundFailed(error) if background_failures > 0 => return Err(error),
                Joined::BackgroundFailed(_) => background_failures += 1,
            }
        }
    }

    /// The cached token, or the result of the run under way or a new one;
    /// if the run under way is being cancelled, what to wait on before
    /// asking again.
    async fn join_or_start(&self, request: &TokenRequest) -> Joined {
        let (waiter, mut result, background) = {
            let mut shared = self.inner.lock();
            let now = SystemTime::now();
            if let Some(cached) = shared.cached.as_mut().filter(|c| c.is_fresh(now)) {
                cached.asked = true;
                let issued = cached.issued();
                if shared.flight.is_none() && shared.ahead.is_due(now) {
                    self.start_background(&mut shared);
                }
                return Joined::Answered(Ok(issued));
            }
            if let Some(dying) = shared.flight.as_ref().filter(|f| f.is_cancelling()) {
                return Joined::Dying(dying.result.clone());
            }
            // The token was rejected while a background run (not told of it)
            // was under way: wait it out, then ask again; the next run, if
            // one is needed, says `rejected`.
            if let Some(ahead) =
                (shared.flight.as_ref()).filter(|f| f.background && shared.rejected.is_some())
            {
                return Joined::Dying(ahead.result.clone());
            }
            if shared.flight.is_none() {
                let mode = shared
                    .cooldown
                    .mode(request.interactive, request.force, Instant::now());
                self.start_flight(&mut shared, mode, false);
            }
            let Some(flight) = shared.flight.as_mut() else {
                unreachable!("a flight was just started");
            };
            flight.waiters += 1;
            flight.outlives_callers |= request.keep_running;
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
            (waiter, flight.result.clone(), flight.background)
        };
        let outcome = match result.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or(Err(BrokerError::Aborted)),
            // The task ended without sending: it panicked or the runtime is
            // shutting down.
            Err(_) => Err(BrokerError::Aborted),
        };
        drop(waiter);
        match outcome {
            Err(BrokerError::LoggedOut) => Joined::Answered(outcome),
            // A token rejected meanwhile came back from a run that was not
            // told of it: the caller's own run says `rejected`.
            Err(error @ BrokerError::SameTokenAfterReject) if background => {
                Joined::BackgroundFailed(error)
            }
            // An interactive caller may still get a token by a login of its
            // own; a quiet one would only run the plugin as that run did.
            Err(error) if background && request.interactive => Joined::BackgroundFailed(error),
            outcome => Joined::Answered(outcome),
        }
    }

    /// Reports that a server refused `token` (say, HTTP 401). Clears the
    /// cached token only if it is still `token` (compare-and-clear), so many
    /// callers reporting the same stale token cause one re-run, with reason
    /// `rejected`. Returns whether this call cleared it. The next
    /// [`Broker::token`] runs the plugin.
    pub fn reject(&self, token: &Token) -> bool {
        self.reject_challenged(token, None)
    }

    /// [`Broker::reject`], with the refusing server's `WWW-Authenticate`
    /// challenge (an `insufficient_scope` error names the scopes it
    /// wants): the next run gets it as `AUTHPLUG_CHALLENGE`. A challenge for
    /// a token already rejected replaces the one held.
    pub fn reject_challenged(&self, token: &Token, challenge: Option<&str>) -> bool {
        let mut shared = self.inner.lock();
        let matches = shared
            .cached
            .as_ref()
            .is_some_and(|cached| cached.token == *token);
        if matches {
            shared.challenge = challenge.map(str::to_owned);
            return self.reject_cached(&mut shared);
        }
        if challenge.is_some() && shared.rejected.as_ref() == Some(token) {
            shared.challenge = challenge.map(str::to_owned);
        }
        false
    }

    /// Reports that a server refused whatever token is cached, for a caller
    /// that does not have it at hand (a user healing a 401 by hand). Like
    /// [`Broker::reject`] with the cached token; returns whether there was
    /// one.
    pub fn reject_current(&self) -> bool {
        self.reject_current_challenged(None)
    }

    /// [`Broker::reject_current`] with the server's challenge (see
    /// [`Broker::reject_challenged`]).
    pub fn reject_current_challenged(&self, challenge: Option<&str>) -> bool {
        let mut shared = self.inner.lock();
        if shared.cached.is_some() || (challenge.is_some() && shared.rejected.is_some()) {
            shared.challenge = challenge.map(str::to_owned);
        }
        self.reject_cached(&mut shared)
    }

    /// Moves the cached token, if any, to `rejected`: the next run gets
    /// reason `rejected` and must not hand it out again.
    fn reject_cached(&self, shared: &mut Shared) -> bool {
        let Some(cached) = shared.cached.take() else {
            return false;
        };
        shared.ahead.cancel();
        shared.rejected = Some(cached.token);
        tracing::info!(plugin = %self.inner.label, "token rejected; the next request re-runs the plugin");
        true
    }

    /// Forgets the cached token (not the state): the next call runs the
    /// plugin with reason `refresh`.
    pub fn invalidate(&self) {
        let mut shared = self.inner.lock();
        shared.cached = None;
        shared.ahead.cancel();
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
            // Only for a token in use: an unused one is not refreshed.
            refresh_ahead_at: (shared.cached.as_ref())
                .filter(|cached| cached.asked)
                .and(shared.ahead.next_at),
            has_state: !shared.state.is_empty(),
            running: shared.flight.is_some(),
            waiters: shared.flight.as_ref().map_or(0, |f| f.waiters),
            rejected: shared.rejected.is_some(),
            runs: shared.runs,
            last_run: shared.last_run.clone(),
            last_error: shared.last_error.clone(),
            cooldown_until: shared.cooldown.ends_at(now),
        }
    }

    /// A non-interactive run to replace the cached token before it is due,
    /// for nobody in particular: callers keep getting the cached token.
    fn start_background(&self, shared: &mut Shared) {
        shared.ahead.started();
        self.start_flight(shared, RunMode::Quiet, true);
    }

    fn start_flight(&self, shared: &mut Shared, mode: RunMode, background: bool) {
        let id = shared.next_flight_id;
        shared.next_flight_id += 1;
        let reason = if background {
            Reason::Expiring
        } else if shared.rejected.is_some() {
            Reason::Rejected
        } else {
            Reason::for_state(&shared.state)
        };
        let (sender, receiver) = watch::channel(None);
        let (cancel, cancelled) = oneshot::channel();
        let challenge = (reason == Reason::Rejected)
            .then(|| shared.challenge.clone())
            .flatten();
        let launch = Launch {
            id,
            challenge,
            state: shared.state.clone(),
            generation: shared.generation,
            reason,
            mode,
            background,
        };
        tokio::spawn(run_flight(self.inner.clone(), launch, sender, cancelled));
        shared.flight = Some(Flight {
            id,
            background,
            outlives_callers: false,
            result: receiver,
            waiters: 0,
            cancel: Some(cancel),
            lines: VecDeque::new(),
            listeners: Vec::new(),
            next_listener: 0,
        });
    }
}

impl Drop for Inner {
    /// A planned background run dies with its broker.
    fn drop(&mut self) {
        let shared = self
            .shared
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.ahead.cancel();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn status_and_debug_show_no_secret() {
        let broker = Broker::with_state(
            PluginCommand::new("true"),
            BrokerOptions::default(),
            State::from("refresh-secret-42"),
        );
        broker.inner.lock().cached = Some(Cached::new(
            Token::from("opaque-secret-17"),
            None,
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
