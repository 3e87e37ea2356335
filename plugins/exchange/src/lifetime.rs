//! When an exchanged token ends, from whatever the answer says: a lifetime
//! (`expires_in`), a moment (`expires_at`, as a Unix time or RFC 3339), or
//! else the token's own JWT `exp`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authplug_protocol::expiry::LONGEST_LIFETIME;
use serde_json::Value;

/// Numbers from this on are Unix times (2001-09-09 and later); smaller
/// ones are lifetimes in seconds.
const UNIX_TIME_FROM: f64 = 1e9;

/// `expires_in`: seconds from now, as a number or a numeric string (some
/// servers quote it).
pub fn from_lifetime(value: &Value, now: SystemTime) -> Result<SystemTime, String> {
    let seconds = number(value)
        .ok_or_else(|| format!("expires_in {} is not a number of seconds", shown(value)))?;
    lifetime(seconds, now)
}

/// A field that says when: a Unix time, an RFC 3339 time, or (below
/// 10^9) a lifetime in seconds.
pub fn from_field(value: &Value, now: SystemTime) -> Result<SystemTime, String> {
    if let Some(text) = value.as_str() {
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
            let seconds = at.timestamp();
            let at = u64::try_from(seconds)
                .ok()
                .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds))
                .ok_or_else(|| format!("the expiry {} is before 1970", shown(value)))?;
            return moment(at, now, value);
        }
    }
    let Some(number) = number(value) else {
        return Err(format!(
            "the expiry {} is neither a Unix time, an RFC 3339 time, nor a number of seconds",
            shown(value)
        ));
    };
    if number >= UNIX_TIME_FROM {
        let at = Duration::try_from_secs_f64(number)
            .ok()
            .and_then(|since| UNIX_EPOCH.checked_add(since))
            .ok_or_else(|| format!("the expiry {} is no time", shown(value)))?;
        moment(at, now, value)
    } else {
        lifetime(number, now)
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|number: &f64| number.is_finite())
}

fn lifetime(seconds: f64, now: SystemTime) -> Result<SystemTime, String> {
    let lifetime = Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|lifetime| !lifetime.is_zero() && *lifetime <= LONGEST_LIFETIME)
        .ok_or_else(|| {
            format!("a token lifetime of {seconds} seconds is not one: it must be above 0 and at most ten years")
        })?;
    Ok(now + lifetime)
}

fn moment(at: SystemTime, now: SystemTime, value: &Value) -> Result<SystemTime, String> {
    if at <= now {
        return Err(format!(
            "the token's expiry {} has passed already (is this machine's clock right?)",
            shown(value)
        ));
    }
    if at > now + LONGEST_LIFETIME {
        if at > UNIX_EPOCH + Duration::from_secs(1_000_000_000_000) {
            return Err(format!(
                "the token's expiry {} looks like milliseconds: --expires-field must name seconds",
                shown(value)
            ));
        }
        return Err(format!(
            "the token's expiry {} is more than ten years away",
            shown(value)
        ));
    }
    Ok(at)
}

fn shown(value: &Value) -> String {
    crate::http::printable(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_shape_of_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let in_an_hour = now + Duration::from_secs(3600);
        assert_eq!(from_lifetime(&json!(3600), now), Ok(in_an_hour));
        assert_eq!(from_lifetime(&json!("3600"), now), Ok(in_an_hour));
        assert_eq!(from_field(&json!(1_800_003_600), now), Ok(in_an_hour));
        assert_eq!(from_field(&json!("1800003600"), now), Ok(in_an_hour));
        assert_eq!(from_field(&json!(3600), now), Ok(in_an_hour));
        assert_eq!(
            from_field(&json!("2027-01-15T09:00:00Z"), now),
            Ok(in_an_hour)
        );
        assert_eq!(
            from_field(&json!("2027-01-15T10:00:00+01:00"), now),
            Ok(in_an_hour)
        );
        for bad in [
            json!(0),
            json!(-5),
            json!("soon"),
            json!(null),
            json!(true),
            json!(1e300),
        ] {
            assert!(from_field(&bad, now).is_err(), "{bad}");
        }
        assert!(from_field(&json!(1_700_000_000), now)
            .unwrap_err()
            .contains("passed"));
        assert!(from_lifetime(&json!("NaN"), now).is_err());
        let millis = from_field(&json!(1_800_003_600_000u64), now).unwrap_err();
        assert!(millis.contains("milliseconds"), "{millis}");
    }
}
