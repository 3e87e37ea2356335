//! How the CLI speaks of a token's expiry: `authplug run` and `authplug
//! check` say what the host made of it (PROTOCOL.md rule 10), kubectl's
//! answer carries it as RFC 3339.

use std::time::SystemTime;

use authplug_protocol::host::RunOutput;

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `2026-12-05T17:00:00Z (in 3600s)`, or `(… ago)`.
pub fn when(at: SystemTime, now: SystemTime) -> String {
    let relative = match at.duration_since(now) {
        Ok(ahead) => format!("in {}s", ahead.as_secs()),
        Err(past) => format!("{}s ago", past.duration().as_secs()),
    };
    format!("{} ({relative})", rfc3339(at))
}

/// Where the expiry a host goes by came from.
pub enum Source {
    /// The plugin reported it on fd 4, and a JWT's `exp` (if any) is not
    /// earlier.
    Reported,
    /// The token's own `exp` (a JWT): the plugin reported nothing, or a
    /// later time.
    JwtExp,
    /// A time already past that the plugin reported: due at once.
    ReportedPast,
    /// Nothing says: the host hands it out until a server refuses it.
    Unknown,
}

pub fn source(output: &RunOutput) -> Source {
    match (output.expires_at, output.reported_expiry) {
        (None, _) => Source::Unknown,
        (Some(at), Some(reported)) if at == reported && output.info_problem.is_some() => {
            Source::ReportedPast
        }
        (Some(at), Some(reported)) if at == reported => Source::Reported,
        (Some(_), _) => Source::JwtExp,
    }
}

/// One line for `authplug run`'s stderr: when the token expires and how
/// the host knows, or that it cannot know.
pub fn summary(output: &RunOutput, now: SystemTime) -> String {
    match (source(output), output.expires_at) {
        (Source::Reported, Some(at)) => {
            format!("the token expires {}, as the plugin reported", when(at, now))
        }
        (Source::JwtExp, Some(at)) => format!(
            "the token expires {}, by its JWT `exp`{}",
            when(at, now),
            if output.reported_expiry.is_some() {
                " (earlier than the plugin reported)"
            } else {
                ""
            }
        ),
        (Source::ReportedPast, Some(at)) => format!(
            "the token expired {}, as the plugin reported: a host refreshes it at once",
            when(at, now)
        ),
        _ if output.info_problem.is_some() => "the token's lifetime is unknown (what the plugin reported on fd 4 could not be used, above, and it is not a JWT): a host hands it out until a server refuses it".to_owned(),
        _ => "the token's lifetime is unknown (the plugin reported none on fd 4, and it is not a JWT): a host hands it out until a server refuses it".to_owned(),
    }
}
