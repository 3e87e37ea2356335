//! The server's challenge that refused a token (rule 1's
//! `AUTHPLUG_CHALLENGE`): what a host passes on with
//! `AUTHPLUG_REASON=rejected` when it has it, and what a plugin reads from
//! it, such as the scopes a server asks for (RFC 6750 §3,
//! `insufficient_scope`).
//!
//! The host passes a `WWW-Authenticate` value on only if it fits
//! ([`usable`]): at most [`CHALLENGE_LIMIT`] bytes of visible ASCII,
//! spaces and tabs, so that a hostile server cannot put control
//! characters or a huge value into a plugin's environment. A plugin that
//! does not know the variable runs as before.

/// Names the server's challenge, with `AUTHPLUG_REASON=rejected` only.
pub const ENV_CHALLENGE: &str = "AUTHPLUG_CHALLENGE";

/// The longest challenge a host passes on.
pub const CHALLENGE_LIMIT: usize = 4096;

/// Whether a host may pass `value` on as [`ENV_CHALLENGE`].
pub fn usable(value: &str) -> bool {
    !value.trim().is_empty()
        && value.len() <= CHALLENGE_LIMIT
        && value
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// The parameters of the `Bearer` challenge in a `WWW-Authenticate` value
/// (RFC 9110 §11.6.1 and RFC 6750 §3), by name in lower case. Another
/// scheme's challenges around it are skipped; a value that does not parse
/// gives what was read up to there.
pub fn bearer_params(value: &str) -> Vec<(String, String)> {
    let mut reader = Reader {
        rest: value.as_bytes(),
    };
    let mut params = Vec::new();
    let mut in_bearer = false;
    loop {
        reader.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let Some(word) = reader.token() else {
            return params;
        };
        reader.skip(|b| b == b' ' || b == b'\t');
        if reader.peek() == Some(b'=') {
            // A parameter of the challenge under way.
            reader.advance();
            reader.skip(|b| b == b' ' || b == b'\t');
            let value = if reader.peek() == Some(b'"') {
                reader.quoted()
            } else {
                reader.token()
            };
            let Some(value) = value else {
                return params;
            };
            if in_bearer {
                params.push((word.to_ascii_lowercase(), value));
            }
        } else {
            // A new challenge's scheme.
            in_bearer = word.eq_ignore_ascii_case("bearer");
        }
    }
}

/// The scopes a `Bearer` challenge asks for when it says
/// `error="insufficient_scope"` (RFC 6750 §3.1); empty otherwise.
pub fn insufficient_scopes(value: &str) -> Vec<String> {
    let params = bearer_params(value);
    let asks_for_scope = params
        .iter()
        .any(|(name, value)| name == "error" && value == "insufficient_scope");
    if !asks_for_scope {
        return Vec::new();
    }
    params
        .iter()
        .find(|(name, _)| name == "scope")
        .map(|(_, scope)| scope.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn advance(&mut self) {
        self.rest = &self.rest[1..];
    }

    fn skip(&mut self, skipped: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&skipped) {
            self.advance();
        }
    }

    /// RFC 9110 §5.6.2's token (and token68's `=`-less part).
    fn token(&mut self) -> Option<String> {
        let length = self
            .rest
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b))
            .count();
        if length == 0 {
            return None;
        }
        let word = String::from_utf8_lossy(&self.rest[..length]).into_owned();
        self.rest = &self.rest[length..];
        Some(word)
    }

    /// RFC 9110 §5.6.4's quoted-string, its escapes undone.
    fn quoted(&mut self) -> Option<String> {
        self.advance();
        let mut value = Vec::new();
        loop {
            let byte = self.peek()?;
            self.advance();
            match byte {
                b'"' => return Some(String::from_utf8_lossy(&value).into_owned()),
                b'\\' => {
                    value.push(self.peek()?);
                    self.advance();
                }
                other => value.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{bearer_params, insufficient_scopes, usable, CHALLENGE_LIMIT};

    #[test]
    fn the_bearer_challenge_is_read_among_others() {
        let value = r#"Basic realm="x", Bearer realm="api", error="insufficient_scope", scope="read write", error_description="needs \"write\"", Negotiate"#;
        let params = bearer_params(value);
        assert_eq!(
            params,
            [
                ("realm".into(), "api".into()),
                ("error".into(), "insufficient_scope".into()),
                ("scope".into(), "read write".into()),
                ("error_description".into(), r#"needs "write""#.into()),
            ]
        );
        assert_eq!(insufficient_scopes(value), ["read", "write"]);
        assert!(insufficient_scopes(r#"Bearer error="invalid_token", scope="a""#).is_empty());
        assert!(insufficient_scopes(r#"Basic error="insufficient_scope", scope="a""#).is_empty());
        assert!(
            insufficient_scopes(r#"Bearer error="insufficient_scope", scope="unterminated"#)
                .is_empty()
        );
        assert_eq!(
            insufficient_scopes("bearer error=insufficient_scope, scope=one"),
            ["one"]
        );
    }

    #[test]
    fn only_short_visible_ascii_is_passed_on() {
        assert!(usable(r#"Bearer error="insufficient_scope", scope="a b""#));
        assert!(!usable(""));
        assert!(!usable("Bearer\nerror=x"));
        assert!(!usable("Bearer é"));
        assert!(!usable(&"a".repeat(CHALLENGE_LIMIT + 1)));
        assert!(usable(&"a".repeat(CHALLENGE_LIMIT)));
    }
}
