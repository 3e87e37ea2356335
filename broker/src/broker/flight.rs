//! Single flight: one plugin run shared by every caller that asks while it
//! is under way, cancelled when the last one goes, its outcome stored
//! under the same lock that ends it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use authplug_protocol::host::{self, RunError, StderrSink};
use authplug_protocol::{Reason, State};
use tokio::sync::{oneshot, watch};

use super::cache::Cached;
use super::cooldown::RunMode;
use super::error::BrokerError;
use super::issued::Issued;
use super::status::RunRecord;
use super::{Inner, Shared};

/// Lines of the current run kept for callers that join it late (the login
/// URL is usually printed first).
pub(super) const REPLAY_LINES: usize = 64;

/// A run's result, once it has one.
pub(super) type FlightResult = watch::Receiver<Option<Result<Issued, BrokerError>>>;

pub(super) struct Flight {
    pub(super) id: u64,
    /// Started by the broker to refresh ahead, for nobody in particular:
    /// it runs to its end even when no caller waits for it.
    pub(super) background: bool,
    /// A caller asked that the run go on without it
    /// ([`TokenRequest::keep_running`](crate::TokenRequest)): it is not
    /// cancelled when the last caller goes.
    pub(super) outlives_callers: bool,
    pub(super) result: FlightResult,
    pub(super) waiters: usize,
    /// Tells the run's task that every caller went away; `None` once sent.
    /// The flight stays until the plugin has exited and been reaped, so
    /// nobody starts a second run with the same state while the first still
    /// lives (it may have spent a refresh token already).
    pub(super) cancel: Option<oneshot::Sender<()>>,
    pub(super) lines: VecDeque<String>,
    pub(super) listeners: Vec<(u64, StderrSink)>,
    pub(super) next_listener: u64,
}

impl Flight {
    pub(super) fn is_cancelling(&self) -> bool {
        self.cancel.is_none()
    }
}

/// Held by each caller waiting on a run; the last one to go cancels it.
pub(super) struct Waiter {
    pub(super) inner: Arc<Inner>,
    pub(super) flight_id: u64,
    pub(super) listener: Option<u64>,
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
        if flight.waiters == 0 && !flight.background && !flight.outlives_callers {
            if let Some(cancel) = flight.cancel.take() {
                let _ = cancel.send(());
            }
            tracing::info!(plugin = %self.inner.label, "every caller went away; cancelling the plugin run");
        }
    }
}

/// Ends the flight when its task ends, however it ends (finished,
/// cancelled, panicked, or dropped with the runtime).
pub(super) struct FlightGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) id: u64,
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
pub(super) fn state_unchanged_by(error: &BrokerError) -> bool {
    match error {
        BrokerError::SameTokenAfterReject => false,
        BrokerError::Run(error) => !matches!(**error, RunError::FailedWithNewState { .. }),
        BrokerError::CoolingDown { error, .. } => state_unchanged_by(error),
        _ => true,
    }
}

/// What a flight starts from.
pub(super) struct Launch {
    pub(super) id: u64,
    pub(super) state: State,
    /// [`Shared::generation`](super::Shared) when it started: a logout
    /// since voids its outcome.
    pub(super) generation: u64,
    pub(super) reason: Reason,
    pub(super) mode: RunMode,
    /// A background run, to refresh ahead ([`Flight::background`]).
    pub(super) background: bool,
    /// With reason `rejected`: the refusing server's challenge.
    pub(super) challenge: Option<String>,
}

pub(super) async fn run_flight(
    inner: Arc<Inner>,
    launch: Launch,
    result: watch::Sender<Option<Result<Issued, BrokerError>>>,
    cancelled: oneshot::Receiver<()>,
) {
    let Launch {
        id,
        state,
        generation,
        reason,
        mode,
        background,
        challenge,
    } = launch;
    let interactive = matches!(mode, RunMode::Interactive);
    let guard = FlightGuard {
        inner: inner.clone(),
        id,
    };
    let mut options = inner.options.run.clone();
    options.reason = Some(reason.clone());
    options.interactive = interactive;
    options.challenge = challenge;
    let sink_owner = Arc::downgrade(&inner);
    options.stderr_sink = Some(Arc::new(move |line: &str| {
        if let Some(inner) = sink_owner.upgrade() {
            inner.on_stderr_line(id, line);
        }
    }));
    tracing::info!(plugin = %inner.label, %reason, interactive, background, "running plugin");
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
    if shared.generation != generation {
        // A logout came while it ran: what it obtained belongs to the login
        // the user just forgot.
        tracing::info!(plugin = %inner.label, "plugin run ended after a logout; its outcome discarded");
        if shared.flight.as_ref().is_some_and(|f| f.id == id) {
            shared.flight = None;
        }
        drop(shared);
        drop(guard);
        result.send_replace(Some(Err(BrokerError::LoggedOut)));
        return;
    }
    let mut warning = None;
    let mut renewed = false;
    // A background run that handed back a token rejected while it ran: not
    // the plugin's fault (it was not told), so no error to report.
    let mut superseded = false;
    let (record_ok, elapsed, answer) = match outcome {
        Ok(output) => {
            let elapsed = output.elapsed;
            // The plugin succeeded, so its state is the current one even if
            // its token is useless: the old state may be spent.
            shared.state = output.state;
            if let Some(problem) = &output.info_problem {
                tracing::warn!(plugin = %inner.label, %problem, "the plugin's token info was not taken as it stands");
                warning = Some(problem.to_string());
            }
            let held = shared.cached.as_ref().map(|cached| &cached.token);
            if shared.rejected.as_ref() == Some(&output.token) {
                superseded = background;
                (background, elapsed, Err(BrokerError::SameTokenAfterReject))
            } else if background && held == Some(&output.token) {
                // A plugin that does not know `expiring` (or whose provider
                // gave nothing new) handed back the token it had: it stays,
                // asked-for as it was, and is tried again later.
                tracing::info!(plugin = %inner.label, "the background refresh got the same token back");
                let issued = shared.cached.as_ref().map(Cached::issued);
                (true, elapsed, issued.ok_or(BrokerError::Aborted))
            } else {
                shared.rejected = None;
                shared.challenge = None;
                let mut cached =
                    Cached::new(output.token, output.expires_at, inner.options.skew, now);
                // A caller's run hands the token to that caller: it is in use.
                // One from a background run is only once a caller gets it.
                cached.asked = !background;
                let issued = cached.issued();
                shared.ahead.plan_for(&cached, &inner, now);
                shared.cached = Some(cached);
                renewed = true;
                (true, elapsed, Ok(issued))
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
    shared.cooldown.after_run(
        answer.is_ok(),
        interactive,
        inner.options.interactive_cooldown,
        (Instant::now(), now),
    );
    if background && !renewed {
        // The valid token stays; another background run is planned while
        // there is time for one.
        let Shared { ahead, cached, .. } = &mut *shared;
        ahead.failed(cached.as_ref(), &inner, now);
    }
    match &answer {
        Ok(_) => {
            shared.last_error = None;
            tracing::info!(plugin = %inner.label, elapsed_ms = elapsed.as_millis() as u64, "plugin run succeeded");
        }
        Err(_) if superseded => {}
        Err(error) => {
            shared.last_error = Some(error.to_string());
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
        background,
        warning,
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
