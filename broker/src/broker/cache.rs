//! The cached token and when to ask the plugin again: `skew` before it
//! expires (the earlier of the plugin's report and a JWT's `exp`, which the
//! protocol crate judges), never for a token of unknown lifetime (until it
//! is rejected); and, ahead of that, when a background refresh may start.

use std::time::{Duration, SystemTime};

use authplug_protocol::Token;

use super::issued::Issued;

pub(super) struct Cached {
    pub(super) token: Token,
    pub(super) expires_at: Option<SystemTime>,
    /// From then on the token is no longer handed out: callers wait for a
    /// run.
    pub(super) refresh_at: Option<SystemTime>,
    /// From then on a background run may replace it (refresh ahead), while
    /// callers still get it at once.
    pub(super) ahead_at: Option<SystemTime>,
    /// A caller got it (the caller of the run that obtained it, or one
    /// since): only then is it worth refreshing in the background (an
    /// idle profile is left alone).
    pub(super) asked: bool,
}

impl Cached {
    pub(super) fn new(
        token: Token,
        expires_at: Option<SystemTime>,
        skew: Duration,
        now: SystemTime,
    ) -> Cached {
        let refresh_at = expires_at.map(|exp| refresh_time(exp, skew, now));
        Cached {
            token,
            expires_at,
            refresh_at,
            ahead_at: refresh_at.map(|at| ahead_time(at, now)),
            asked: false,
        }
    }

    pub(super) fn is_fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.map_or(true, |at| now < at)
    }

    pub(super) fn issued(&self) -> Issued {
        Issued {
            token: self.token.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// `skew` before `exp`; but a token that arrives already inside the skew
/// window is kept for half its remaining life, or every call would run the
/// plugin again.
pub(super) fn refresh_time(exp: SystemTime, skew: Duration, now: SystemTime) -> SystemTime {
    let ahead = exp.checked_sub(skew).unwrap_or(SystemTime::UNIX_EPOCH);
    if ahead > now {
        ahead
    } else {
        let remaining = exp.duration_since(now).unwrap_or_default();
        now + remaining / 2
    }
}

/// Three quarters of the way from `now` to `refresh_at`: the last quarter
/// is the background refresh's, with room for a retry or two before
/// anyone has to wait.
pub(super) fn ahead_time(refresh_at: SystemTime, now: SystemTime) -> SystemTime {
    let served = refresh_at.duration_since(now).unwrap_or_default();
    now + served / 4 * 3
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
    fn the_background_refresh_starts_three_quarters_of_the_way_to_the_refresh_point() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cached = Cached::new(
            Token::from("t"),
            Some(now + Duration::from_secs(3660)),
            Duration::from_secs(60),
            now,
        );
        assert_eq!(cached.refresh_at, Some(now + Duration::from_secs(3600)));
        assert_eq!(cached.ahead_at, Some(now + Duration::from_secs(2700)));
        assert!(!cached.asked);
        let opaque = Cached::new(Token::from("t"), None, Duration::from_secs(60), now);
        assert_eq!((opaque.refresh_at, opaque.ahead_at), (None, None));
        assert!(opaque.is_fresh(now + Duration::from_secs(1_000_000)));
    }
}
