//! When a token expires: what a plugin reports on the info channel (rule
//! 10) and what a JWT's `exp` says (and, for a person who wants to see
//! them, the claims it is read from). Both are read here and only here, by
//! the host, the broker, the agent's helpers and plugins alike, so that a
//! value one of them accepts (a numeric string, say) no other refuses.
//!
//! No signature is checked: a host only decides *when* to ask the plugin
//! again, and the server that receives the token does the verifying.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use zeroize::Zeroizing;

/// The descriptor on which a plugin may write its token's info (rule 10),
/// when the host offers it in [`ENV_INFO_FD`].
pub const INFO_FD: i32 = 4;

/// Set by a host that offers the info channel (rule 10); its value is the
/// descriptor to write on, [`INFO_FD`].
pub const ENV_INFO_FD: &str = "AUTHPLUG_INFO_FD";

/// Most bytes of info a host reads (rule 10); more is reported and ignored,
/// and never fails the run.
pub const INFO_LIMIT: usize = 64 * 1024;

/// How far ahead an expiry may lie and still be believed: beyond it the
/// value is taken for a mistake (milliseconds for seconds, say).
pub const LONGEST_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

/// A JWT `exp` this far past 1970 (the year 33658) is no time.
const JWT_EXP_BOUND: Duration = Duration::from_secs(1_000_000_000_000);

/// Why a plugin's info was not taken as it stands (rule 10). The run still
/// succeeds; its token is taken to be of unknown lifetime, or, for a time
/// already past, due at once. Never valid for longer than it said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoProblem {
    /// More than [`INFO_LIMIT`] bytes.
    TooLarge,
    /// Not a JSON object.
    NotAnObject(String),
    /// `expires_at` is not a number of seconds (nor a string of one).
    NotATime(String),
    /// `expires_at` is negative.
    Negative,
    /// `expires_at` has passed already: the token is due at once.
    InThePast(SystemTime),
    /// `expires_at` lies more than [`LONGEST_LIFETIME`] ahead.
    TooFarAhead(SystemTime),
}

impl InfoProblem {
    /// The expiry a host goes by despite the problem: the time itself for
    /// one already past (due at once), none otherwise (unknown lifetime).
    pub fn expiry_to_use(&self) -> Option<SystemTime> {
        match self {
            InfoProblem::InThePast(at) => Some(*at),
            _ => None,
        }
    }
}

impl fmt::Display for InfoProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = "so the token's lifetime is taken as unknown";
        match self {
            InfoProblem::TooLarge => write!(
                f,
                "the plugin wrote more than {INFO_LIMIT} bytes of token info on fd {INFO_FD}, {unknown}"
            ),
            InfoProblem::NotAnObject(why) => write!(
                f,
                "the plugin's token info on fd {INFO_FD} is not a JSON object ({why}), {unknown}"
            ),
            InfoProblem::NotATime(what) => write!(
                f,
                "the plugin's `expires_at` ({what}) is not a number of seconds since 1970, {unknown}"
            ),
            InfoProblem::Negative => {
                write!(f, "the plugin's `expires_at` is negative, {unknown}")
            }
            InfoProblem::InThePast(at) => {
                let seconds = unix_seconds(*at);
                let hint = if seconds < 1_000_000_000 {
                    " (a lifetime in seconds? `expires_at` counts seconds since 1970)"
                } else {
                    ""
                };
                write!(
                    f,
                    "the plugin says its token expired already (`expires_at` {seconds}{hint}), so it is due for a refresh at once"
                )
            }
            InfoProblem::TooFarAhead(at) => write!(
                f,
                "the plugin's `expires_at` ({}) is more than ten years ahead (milliseconds? it counts seconds), {unknown}",
                unix_seconds(*at)
            ),
        }
    }
}

impl std::error::Error for InfoProblem {}

/// Reads what a plugin wrote on the info channel at `now` (rule 10): the
/// expiry it reported, if it reported one. Empty info, or an object without
/// `expires_at`, reports none; unknown members are ignored (room for more).
pub fn read_info(bytes: &[u8], now: SystemTime) -> Result<Option<SystemTime>, InfoProblem> {
    if bytes.len() > INFO_LIMIT {
        return Err(InfoProblem::TooLarge);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| InfoProblem::NotAnObject(e.to_string()))?;
    let serde_json::Value::Object(members) = value else {
        return Err(InfoProblem::NotAnObject(format!("it is {}", kind(&value))));
    };
    let Some(expires_at) = members.get("expires_at") else {
        return Ok(None);
    };
    let at = numeric_date(expires_at)?;
    if at <= now {
        return Err(InfoProblem::InThePast(at));
    }
    if at.duration_since(now).unwrap_or_default() > LONGEST_LIFETIME {
        return Err(InfoProblem::TooFarAhead(at));
    }
    Ok(Some(at))
}

/// The info a plugin writes for a token that expires at `at`: one JSON
/// object on one line.
pub fn info_line(at: SystemTime) -> String {
    format!("{{\"expires_at\":{}}}\n", unix_seconds(at))
}

/// A JWT's `exp` claim, if the token is a JWS (three parts) whose payload
/// has a usable one: a number of seconds, or a string of one, as some
/// providers send it. Anything else counts as an opaque token.
pub fn jwt_expiry(token: &[u8]) -> Option<SystemTime> {
    let claims = jwt_claims(token)?;
    let at = numeric_date(claims.get("exp")?).ok()?;
    // A signed `exp` far ahead is the issuer's choice (a long-lived service
    // token); only one past any calendar is taken for a mistake.
    (at < UNIX_EPOCH + JWT_EXP_BOUND).then_some(at)
}

/// The claims of a JWS (three parts) as its payload states them, if it is
/// one and its payload is a JSON object; `None` for an opaque token or an
/// encrypted JWE. The signature is not checked: this is what the token
/// says, not what a server would accept.
pub fn jwt_claims(token: &[u8]) -> Option<serde_json::Value> {
    let mut parts = token.split(|&b| b == b'.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None; // five parts: an encrypted JWE, whose payload we cannot read
    }
    let end = payload
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |i| i + 1);
    // The payload is part of the token: wipe our decoded copy too.
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&payload[..end])
            .ok()?,
    );
    let claims: serde_json::Value = serde_json::from_slice(&decoded).ok()?;
    claims.is_object().then_some(claims)
}

/// The earlier of two expiries, either of which may be unknown.
pub fn earlier(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An RFC 7519 NumericDate: seconds since 1970 as a JSON number, or as a
/// string of one (not the RFC's, but what some providers send).
fn numeric_date(value: &serde_json::Value) -> Result<SystemTime, InfoProblem> {
    let seconds = match value {
        serde_json::Value::Number(number) => number.as_f64(),
        serde_json::Value::String(text) => {
            let text = text.trim();
            let numeric = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
            numeric.then(|| text.parse::<f64>().ok()).flatten()
        }
        _ => None,
    }
    .filter(|seconds| seconds.is_finite())
    .ok_or_else(|| InfoProblem::NotATime(shown(value)))?;
    if seconds < 0.0 {
        return Err(InfoProblem::Negative);
    }
    // Past any lifetime worth believing, but still a time: said as such.
    let seconds = seconds.min(1.0e15);
    Ok(UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A value as the user may see it: short, and of a known kind.
fn shown(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        kind(value).to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> Vec<u8> {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            engine.encode(r#"{"alg":"RS256"}"#),
            engine.encode(payload)
        )
        .into_bytes()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn reads_exp_from_a_jwt_as_a_number_or_a_numeric_string() {
        for payload in [
            r#"{"sub":"a","exp":1900000000,"aud":["x"]}"#,
            r#"{"sub":"a","exp":"1900000000"}"#,
            r#"{"exp":1900000000.0}"#,
        ] {
            assert_eq!(
                jwt_expiry(&jwt(payload)),
                Some(at(1_900_000_000)),
                "{payload}"
            );
        }
    }

    #[test]
    fn anything_else_is_opaque() {
        for token in [
            b"opaque-token".to_vec(),
            jwt(r#"{"sub":"no exp"}"#),
            jwt(r#"{"exp":"soon"}"#),
            jwt(r#"{"exp":-5}"#),
            jwt(r#"{"exp":"-5"}"#),
            jwt(r#"{"exp":true}"#),
            jwt(r#"{"exp":1e300}"#),
            jwt("not json"),
            b"a.!!!.c".to_vec(),
            b"a.b.c.d.e".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(
                jwt_expiry(&token),
                None,
                "{}",
                String::from_utf8_lossy(&token)
            );
        }
    }

    #[test]
    fn info_is_read_with_every_problem_named() {
        let now = at(1_800_000_000);
        assert_eq!(read_info(b"", now), Ok(None));
        assert_eq!(read_info(b"  \n", now), Ok(None));
        assert_eq!(read_info(br#"{"token_type":"Bearer"}"#, now), Ok(None));
        assert_eq!(
            read_info(br#"{"expires_at":1800000600,"scope":"a b"}"#, now),
            Ok(Some(at(1_800_000_600)))
        );
        assert_eq!(
            read_info(br#"{"expires_at":"1800000600"}"#, now),
            Ok(Some(at(1_800_000_600)))
        );
        assert!(matches!(
            read_info(b"soon", now),
            Err(InfoProblem::NotAnObject(_))
        ));
        assert!(matches!(
            read_info(b"[1]", now),
            Err(InfoProblem::NotAnObject(_))
        ));
        assert!(matches!(
            read_info(br#"{"expires_at":"tomorrow"}"#, now),
            Err(InfoProblem::NotATime(_))
        ));
        assert_eq!(
            read_info(br#"{"expires_at":-1}"#, now),
            Err(InfoProblem::Negative)
        );
        assert_eq!(
            read_info(br#"{"expires_at":3600}"#, now),
            Err(InfoProblem::InThePast(at(3600)))
        );
        assert!(matches!(
            read_info(br#"{"expires_at":1800000600000}"#, now),
            Err(InfoProblem::TooFarAhead(_))
        ));
        assert_eq!(
            read_info(&vec![b' '; INFO_LIMIT + 1], now),
            Err(InfoProblem::TooLarge)
        );
        // What the SDK writes, the host reads.
        assert_eq!(
            read_info(info_line(at(1_800_000_600)).as_bytes(), now),
            Ok(Some(at(1_800_000_600)))
        );
        // Only a time already past is used despite its problem: as due.
        assert_eq!(InfoProblem::InThePast(at(5)).expiry_to_use(), Some(at(5)));
        assert_eq!(InfoProblem::Negative.expiry_to_use(), None);
    }

    #[test]
    fn the_earlier_expiry_wins_and_unknown_yields() {
        assert_eq!(earlier(Some(at(5)), Some(at(3))), Some(at(3)));
        assert_eq!(earlier(None, Some(at(3))), Some(at(3)));
        assert_eq!(earlier(Some(at(5)), None), Some(at(5)));
        assert_eq!(earlier(None, None), None);
    }
}
