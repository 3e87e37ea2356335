//! What a profile's name and its durations may be.

use std::time::Duration;

use super::file::ConfigError;

pub(super) fn check_name(name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Profile {
            name: name.to_owned(),
            message: "a profile name is 1 to 64 letters, digits, '-', '_' or '.'".into(),
        })
    }
}

pub(super) const DAY: u64 = 24 * 60 * 60;

/// What a duration field may hold. The upper bounds are far past any sane
/// setting, and keep the times computed from them representable.
pub(super) struct Bounds {
    positive: bool,
    max_secs: u64,
    max_text: &'static str,
}

pub(super) const TIMEOUT: Bounds = Bounds {
    positive: true,
    max_secs: DAY,
    max_text: "a day",
};

pub(super) const SKEW: Bounds = Bounds {
    positive: false,
    max_secs: 365 * DAY,
    max_text: "a year",
};

pub(super) const COOLDOWN: Bounds = Bounds {
    positive: false,
    max_secs: DAY,
    max_text: "a day",
};

pub(super) fn seconds(
    name: &str,
    field: &str,
    value: Option<f64>,
    default: Duration,
    bounds: Bounds,
) -> Result<Duration, ConfigError> {
    let Some(secs) = value else {
        return Ok(default);
    };
    let low = if bounds.positive { "above 0" } else { "from 0" };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !(bounds.positive && d.is_zero()))
        .filter(|d| *d <= Duration::from_secs(bounds.max_secs))
        .ok_or_else(|| ConfigError::Profile {
            name: name.to_owned(),
            message: format!(
                "{field} must be a number of seconds {low} to {} ({}), not {secs}",
                bounds.max_secs, bounds.max_text
            ),
        })
}
