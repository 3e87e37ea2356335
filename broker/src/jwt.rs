//! Reads `exp` from a JWT's payload so the broker can refresh ahead of time.
//!
//! No signature is checked: the broker only decides *when* to ask the plugin
//! again, and the server that receives the token does the verifying. A token
//! that is not a three-part JWS with a numeric `exp` counts as opaque.

use std::time::{Duration, SystemTime};

use base64::Engine;
use zeroize::Zeroizing;

#[derive(serde::Deserialize)]
struct Claims {
    exp: Option<f64>,
}

/// The token's `exp` claim, if it is a JWT that has one.
pub fn expiry(token: &[u8]) -> Option<SystemTime> {
    let mut parts = token.split(|&b| b == b'.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None; // five parts: an encrypted JWE, whose payload we cannot read
    }
    let payload = trim_padding(payload);
    // The payload is part of the token: wipe our decoded copy too.
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?,
    );
    let claims: Claims = serde_json::from_slice(&decoded).ok()?;
    let exp = claims.exp?;
    if !exp.is_finite() || !(0.0..=1.0e12).contains(&exp) {
        return None;
    }
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(exp))
}

fn trim_padding(part: &[u8]) -> &[u8] {
    let end = part.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    &part[..end]
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

    #[test]
    fn reads_exp_from_a_jwt() {
        let exp = expiry(&jwt(r#"{"sub":"a","exp":1700000000,"aud":["x"]}"#));
        assert_eq!(
            exp,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn anything_else_is_opaque() {
        for token in [
            b"opaque-token".to_vec(),
            jwt(r#"{"sub":"no exp"}"#),
            jwt(r#"{"exp":"soon"}"#),
            jwt(r#"{"exp":-5}"#),
            jwt("not json"),
            b"a.!!!.c".to_vec(),
            b"a.b.c.d.e".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(expiry(&token), None, "{}", String::from_utf8_lossy(&token));
        }
    }
}
