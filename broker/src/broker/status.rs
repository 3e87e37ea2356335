//! What a broker holds, without secrets ([`Status`], [`RunRecord`]).

use std::time::{Duration, SystemTime};

/// What the broker holds, without secrets: for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// A token is cached.
    pub has_token: bool,
    /// When the cached token expires, if known: the earlier of what its
    /// plugin reported and its `exp` if it is a JWT.
    pub expires_at: Option<SystemTime>,
    /// When the broker stops handing it out and callers wait for a run.
    pub refresh_at: Option<SystemTime>,
    /// When the next background refresh may start (refresh ahead), if one
    /// is planned.
    pub refresh_ahead_at: Option<SystemTime>,
    /// The plugin has a state.
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
    /// The last finished run.
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
    /// When it ended.
    pub finished_at: SystemTime,
    /// Its `AUTHPLUG_REASON`.
    pub reason: String,
    /// Whether it ran with `AUTHPLUG_INTERACTIVE=1`.
    pub interactive: bool,
    /// Whether it gave a token.
    pub ok: bool,
    /// How long it took (zero for a failed run).
    pub elapsed: Duration,
    /// Whether the broker started it on its own, to refresh ahead.
    pub background: bool,
    /// A problem with what the plugin reported of its token's expiry
    /// (PROTOCOL.md rule 10): the run succeeded all the same.
    pub warning: Option<String>,
}
