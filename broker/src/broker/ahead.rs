//! Refresh ahead: a token that has been asked for is replaced in the
//! background before anyone has to wait for it. The policy, with the clock
//! passed in, is [`Ahead`]; the timer that wakes the broker at the planned
//! time is [`Ahead::schedule`].
//!
//! A background run is non-interactive (`AUTHPLUG_INTERACTIVE=0`, reason
//! `expiring`), starts no cool-down, and never takes the valid token away:
//! callers keep getting it at once until its refresh point. It runs only
//! for a token a caller got (the callers of the run that obtained it
//! count; nobody has got a background run's token until someone asks), so
//! an idle profile is refreshed at most once after its last use. A failed
//! one is tried again at most [`ATTEMPTS`] times in all, each halfway to
//! the refresh point.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::task::AbortHandle;

use super::cache::Cached;
use super::{Broker, Inner};

/// Background runs per token, the first included.
pub(super) const ATTEMPTS: u32 = 3;

/// No retry is planned closer than this to the refresh point: it would
/// hardly finish before callers have to wait anyway.
const SHORTEST_RETRY: Duration = Duration::from_millis(50);

/// The background refresh plan of the cached token.
#[derive(Default)]
pub(super) struct Ahead {
    /// When the next background run may start; `None`: none planned (no
    /// cached token, unknown lifetime, attempts used up, or one under way).
    pub(super) next_at: Option<SystemTime>,
    /// Background runs tried for this token.
    pub(super) attempts: u32,
    /// Tells a timer that woke for an older plan to do nothing.
    pub(super) plan: u64,
    pub(super) timer: Option<AbortHandle>,
}

impl Ahead {
    /// A new token was cached: plan its first background run.
    pub(super) fn plan_for(&mut self, cached: &Cached, inner: &Arc<Inner>, now: SystemTime) {
        self.cancel();
        if !inner.options.refresh_ahead {
            return;
        }
        self.next_at = cached.ahead_at;
        self.schedule(inner, now);
    }

    /// Whether a background run may start now.
    pub(super) fn is_due(&self, now: SystemTime) -> bool {
        self.next_at.is_some_and(|at| now >= at)
    }

    /// A background run is starting: nothing more is planned until it ends.
    pub(super) fn started(&mut self) {
        self.stop_timer();
        self.attempts += 1;
    }

    /// A background run failed (or gave the same token back): try again
    /// halfway to the refresh point, unless the attempts are used up.
    pub(super) fn failed(&mut self, cached: Option<&Cached>, inner: &Arc<Inner>, now: SystemTime) {
        self.stop_timer();
        let Some(refresh_at) = cached.and_then(|cached| cached.refresh_at) else {
            return;
        };
        if self.attempts >= ATTEMPTS {
            return;
        }
        let left = refresh_at.duration_since(now).unwrap_or_default();
        if left / 2 < SHORTEST_RETRY {
            return;
        }
        self.next_at = Some(now + left / 2);
        self.schedule(inner, now);
    }

    /// Nothing planned any more (the token was rejected, forgotten or
    /// replaced).
    pub(super) fn cancel(&mut self) {
        self.stop_timer();
        self.attempts = 0;
    }

    fn stop_timer(&mut self) {
        self.next_at = None;
        self.plan += 1;
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }

    /// Wakes the broker at `next_at`. The timer holds the broker weakly, so
    /// a dropped broker is not kept alive by it.
    fn schedule(&mut self, inner: &Arc<Inner>, now: SystemTime) {
        let Some(at) = self.next_at else {
            return;
        };
        self.plan += 1;
        let plan = self.plan;
        let wait = at.duration_since(now).unwrap_or_default();
        let inner: Weak<Inner> = Arc::downgrade(inner);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(inner) = inner.upgrade() {
                Broker { inner }.on_ahead_timer(plan);
            }
        });
        self.timer = Some(timer.abort_handle());
    }
}

impl Broker {
    /// The planned time has come: refresh in the background if the token
    /// is in use (a caller got it) and still served. If it is unused, the
    /// first caller that asks for it starts the run (while it gets the
    /// token at once).
    fn on_ahead_timer(&self, plan: u64) {
        let mut shared = self.inner.lock();
        if shared.ahead.plan != plan {
            return;
        }
        shared.ahead.timer = None;
        let now = SystemTime::now();
        // A timer late past the refresh point (a laptop waking up) leaves
        // the refresh to the next caller's own run, which may log in.
        let in_use =
            (shared.cached.as_ref()).is_some_and(|cached| cached.asked && cached.is_fresh(now));
        if in_use && shared.flight.is_none() && shared.ahead.is_due(now) {
            self.start_background(&mut shared);
        }
    }
}
