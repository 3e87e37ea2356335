//! What the plugin writes on stderr, and how the provider's words are made
//! safe to print there.

/// Says something to the user, on stderr (never a token or secret), with
/// no control characters (messages quote the provider).
pub(crate) fn say(message: &str) {
    say_raw(&format!("authplug-oidc: {}", without_controls(message)));
}

/// A line on stderr as it is (a QR code, say). Never panics: a host that
/// closed our stderr is no reason to lose the run (`eprintln!` would).
pub(crate) fn say_raw(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

pub(crate) fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An error and its causes on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Text from the provider, made safe for a terminal (no control
/// characters) and short.
pub(crate) fn printable(text: &str) -> String {
    without_controls(text).chars().take(500).collect()
}
