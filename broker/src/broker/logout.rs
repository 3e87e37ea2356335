//! Logging out: the plugin's last chance to clean up (a run with reason
//! `logout`, PROTOCOL.md rule 1), then the token and the state forgotten,
//! whatever that run did.

use std::sync::Arc;

use authplug_protocol::host::{self, RunError, StderrSink};
use authplug_protocol::Reason;

use super::Broker;

/// What [`Broker::logout`] did. The login is forgotten in every case.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogoutOutcome {
    /// The broker held no token and no state: nothing to clean up, no run.
    NothingHeld,
    /// The plugin's logout run exited 0 (its token and state, if any,
    /// discarded).
    CleanedUp,
    /// The plugin's logout run failed: what it held at its provider (a
    /// refresh token) may still be valid there until it expires.
    CleanupFailed(RunError),
}

impl Broker {
    /// Forgets the login: takes the token and the state out of the broker,
    /// then runs the plugin once with `AUTHPLUG_REASON=logout`, never
    /// interactive, with that state, so that it can revoke it at its
    /// provider. What the run returns is discarded. The next
    /// [`Broker::token`] starts from nothing (reason `initial`).
    ///
    /// A run under way when this is called is not stopped, but its outcome
    /// is discarded too: its callers get [`BrokerError::LoggedOut`](super::BrokerError::LoggedOut).
    /// `on_stderr` receives the logout run's stderr lines.
    pub async fn logout(&self, on_stderr: Option<StderrSink>) -> LogoutOutcome {
        // A background refresh under way may be rotating the refresh token:
        // the logout revokes the newest one, so it waits for that run (short
        // and never interactive) to end. A caller's run (a login that may
        // wait minutes for a browser) is not waited for: its outcome is
        // discarded.
        loop {
            let ahead = (self.inner.lock().flight.as_ref())
                .filter(|flight| flight.background)
                .map(|flight| flight.result.clone());
            match ahead {
                Some(mut result) => {
                    let _ = result.wait_for(Option::is_some).await;
                }
                None => break,
            }
        }
        let (state, had_token) = {
            let mut shared = self.inner.lock();
            shared.generation += 1;
            let had_token = shared.cached.take().is_some();
            shared.ahead.cancel();
            shared.rejected = None;
            shared.challenge = None;
            shared.cooldown = Default::default();
            shared.last_error = None;
            (std::mem::take(&mut shared.state), had_token)
        };
        if state.is_empty() && !had_token {
            return LogoutOutcome::NothingHeld;
        }
        tracing::info!(plugin = %self.inner.label, "logging out: running the plugin to clean up");
        let mut options = self.inner.options.run.clone();
        options.reason = Some(Reason::Logout);
        options.interactive = false;
        // Nothing a logout run returns is kept, so it is not offered.
        options.keep_state_on_failure = false;
        let broadcast = Arc::downgrade(&self.inner);
        options.stderr_sink = Some(Arc::new(move |line: &str| {
            if let Some(sink) = &on_stderr {
                sink(line);
            }
            if let Some(inner) = broadcast.upgrade() {
                let _ = inner.stderr.send(line.to_owned());
            }
        }));
        let outcome = host::run(&self.inner.command, &state, &options).await;
        drop(state);
        match outcome {
            // The host judged it by its exit code (rule 1); a token a plugin
            // that does not know `logout` printed is thrown away.
            Ok(_) => LogoutOutcome::CleanedUp,
            Err(error) => {
                tracing::warn!(plugin = %self.inner.label, %error, "the plugin could not clean up on logout; the login is forgotten all the same");
                LogoutOutcome::CleanupFailed(error)
            }
        }
    }
}
