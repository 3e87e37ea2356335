//! The cached token and when to ask the plugin again: `skew` before a
//! JWT's `exp`, never for an opaque token (until it is rejected).

use std::time::{Duration, SystemTime};

use authplug_protocol::Token;

use crate::jwt;

pub(super) struct Cached {
    pub(super) token: Token,
    pub(super) expires_at: Option<SystemTime>,
    pub(super) refresh_at: Option<SystemTime>,
}

impl Cached {
    pub(super) fn new(token: Token, skew: Duration, now: SystemTime) -> Cached {
        let expires_at = jwt::expiry(token.as_bytes());
        let refresh_at = expires_at.map(|exp| refresh_time(exp, skew, now));
        Cached {
            token,
            expires_at,
            refresh_at,
        }
    }

    pub(super) fn is_fresh(&self, now: SystemTime) -> bool {
        self.refresh_at.map_or(true, |at| now < at)
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
}
