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

/// The parameters of each `Bearer` challenge in a `WWW-Authenticate`
/// value (RFC 9110 §11.6.1 and RFC 6750 §3), in order, names in lower
/// case. Other schemes' challenges (and their token68 values) are skipped;
/// a value that does not parse gives what was read up to there.
pub fn bearer_challenges(value: &str) -> Vec<Vec<(String, String)>> {
    let mut reader = Reader {
        rest: value.as_bytes(),
    };
    let mut challenges: Vec<Vec<(String, String)>> = Vec::new();
    let mut in_bearer = false;
    loop {
        reader.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let Some(word) = reader.token() else {
            return challenges;
        };
        reader.skip(|b| b == b' ' || b == b'\t');
        if reader.peek() == Some(b'=') {
            reader.skip(|b| b == b'=');
            reader.skip(|b| b == b' ' || b == b'\t');
            // A token68 (`Negotiate YII=`): its padding ends it.
            if matches!(reader.peek(), None | Some(b',')) {
                continue;
            }
            let value = if reader.peek() == Some(b'"') {
                reader.quoted()
            } else {
                reader.token()
            };
            let Some(value) = value else {
                return challenges;
            };
            if in_bearer {
                if let Some(params) = challenges.last_mut() {
                    params.push((word.to_ascii_lowercase(), value));
                }
            }
        } else {
            // A new challenge's scheme.
            in_bearer = word.eq_ignore_ascii_case("bearer");
            if in_bearer {
                challenges.push(Vec::new());
            }
        }
    }
}

/// The parameters of the first `Bearer` challenge ([`bearer_challenges`]).
pub fn bearer_params(value: &str) -> Vec<(String, String)> {
    bearer_challenges(value)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// The scopes a `Bearer` challenge that says `error="insufficient_scope"`
/// asks for (RFC 6750 §3.1), each a valid scope token (RFC 6749 §3.3) of
/// at most [`SCOPE_LIMIT`] bytes, without repeats; empty otherwise.
pub fn insufficient_scopes(value: &str) -> Vec<String> {
    let Some(params) = bearer_challenges(value).into_iter().find(|params| {
        params
            .iter()
            .any(|(name, value)| name == "error" && value == "insufficient_scope")
    }) else {
        return Vec::new();
    };
    let mut scopes: Vec<String> = Vec::new();
    let listed = params.iter().find(|(name, _)| name == "scope");
    for scope in listed.map(|(_, s)| s.split(' ')).into_iter().flatten() {
        if is_scope_token(scope) && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// The longest scope taken from a challenge.
pub const SCOPE_LIMIT: usize = 128;

/// RFC 6749 §3.3's scope-token (`%x21 / %x23-5B / %x5D-7E`), here at most
/// [`SCOPE_LIMIT`] bytes.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= SCOPE_LIMIT
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
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
        // A token68 before it, a second Bearer challenge: the one with the
        // error counts; repeats and what is no scope token are dropped.
        let mixed = r#"Negotiate YII=, Bearer scope="x", Bearer error="insufficient_scope", scope="a  a b\\c d""#;
        assert_eq!(insufficient_scopes(mixed), ["a", "d"]);
        let long = format!(
            r#"Bearer error="insufficient_scope", scope="{} ok""#,
            "s".repeat(129)
        );
        assert_eq!(insufficient_scopes(&long), ["ok"]);
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
