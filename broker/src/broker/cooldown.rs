//! The interactive cool-down: after an interactive run fails, runs for
//! interactive callers are started non-interactively for a while (a silent
//! refresh still works; no browser opens again and again), unless forced.
//! Only a failed interactive run starts it, and a success ends it.

use std::time::{Duration, Instant, SystemTime};

/// Longer cool-downs are cut to this.
pub(super) const LONGEST_COOLDOWN: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// How a run was started.
#[derive(Clone, Copy)]
pub(super) enum RunMode {
    Interactive,
    /// For non-interactive callers.
    Quiet,
    /// For an interactive caller, but non-interactive since an interactive
    /// run failed recently: its failure says so.
    CoolingDown {
        until: Instant,
    },
}

/// When interactive runs are refused, if they are: the policy alone, with
/// the clock passed in, so that it can be read and tested apart from the
/// run loop.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Cooldown {
    /// Until then (monotonic, and the wall clock for [`Status`](super::Status)).
    pub(super) until: Option<(Instant, SystemTime)>,
}

impl Cooldown {
    /// How to start a run for a caller: interactive as asked, unless an
    /// interactive run failed less than the cool-down ago and the caller
    /// does not force one.
    pub(super) fn mode(&self, interactive: bool, force: bool, now: Instant) -> RunMode {
        match self
            .until
            .map(|(until, _)| until)
            .filter(|until| now < *until)
        {
            Some(until) if interactive && !force => RunMode::CoolingDown { until },
            _ if interactive => RunMode::Interactive,
            _ => RunMode::Quiet,
        }
    }

    /// After a finished run: a success ends the cool-down; a failed run
    /// that was interactive starts one of `length` (cut to what the clocks
    /// can hold); any other failure leaves it as it is, so a quiet run
    /// failing during the cool-down does not prolong it.
    pub(super) fn after_run(
        &mut self,
        succeeded: bool,
        was_interactive: bool,
        length: Duration,
        now: (Instant, SystemTime),
    ) {
        if succeeded {
            self.until = None;
        } else if was_interactive {
            let length = length.min(LONGEST_COOLDOWN);
            if let (Some(until), Some(at)) = (now.0.checked_add(length), now.1.checked_add(length))
            {
                self.until = Some((until, at));
            }
        }
    }

    /// When it ends, on the wall clock, if it has not yet.
    pub(super) fn ends_at(&self, now: Instant) -> Option<SystemTime> {
        self.until
            .filter(|(until, _)| *until > now)
            .map(|(_, at)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn failed_interactively(now: (Instant, SystemTime)) -> Cooldown {
        let mut cooldown = Cooldown::default();
        cooldown.after_run(false, true, MINUTE, now);
        cooldown
    }

    #[test]
    fn a_failed_interactive_run_makes_interactive_callers_quiet_unless_forced() {
        let now = (Instant::now(), SystemTime::now());
        assert!(matches!(
            Cooldown::default().mode(true, false, now.0),
            RunMode::Interactive
        ));
        let cooldown = failed_interactively(now);
        assert!(matches!(
            cooldown.mode(true, false, now.0),
            RunMode::CoolingDown { .. }
        ));
        assert!(matches!(
            cooldown.mode(true, true, now.0),
            RunMode::Interactive
        ));
        assert!(matches!(cooldown.mode(false, false, now.0), RunMode::Quiet));
        assert_eq!(cooldown.ends_at(now.0), Some(now.1 + MINUTE));
        // Over once its time has passed.
        let later = now.0 + MINUTE + Duration::from_secs(1);
        assert!(matches!(
            cooldown.mode(true, false, later),
            RunMode::Interactive
        ));
        assert_eq!(cooldown.ends_at(later), None);
    }

    #[test]
    fn only_a_failed_interactive_run_starts_it_and_a_success_ends_it() {
        let now = (Instant::now(), SystemTime::now());
        let mut quiet = Cooldown::default();
        quiet.after_run(false, false, MINUTE, now);
        assert_eq!(quiet.ends_at(now.0), None, "a quiet failure starts none");

        let mut cooldown = failed_interactively(now);
        let a_bit_later = (
            now.0 + Duration::from_secs(10),
            now.1 + Duration::from_secs(10),
        );
        cooldown.after_run(false, false, MINUTE, a_bit_later);
        assert_eq!(
            cooldown.ends_at(now.0),
            Some(now.1 + MINUTE),
            "a quiet failure does not prolong it"
        );
        cooldown.after_run(true, false, MINUTE, a_bit_later);
        assert_eq!(cooldown.ends_at(now.0), None, "a success ends it");
    }

    #[test]
    fn an_endless_cooldown_is_cut_and_does_not_overflow() {
        let now = (Instant::now(), SystemTime::now());
        let mut cooldown = Cooldown::default();
        cooldown.after_run(false, true, Duration::MAX, now);
        assert!(cooldown.ends_at(now.0).is_some());
    }
}
