//! A service's own exchange: a JSON object holding the subject token
//! (`--json-field`) and fixed fields (`--field`), answered by a JSON
//! object holding the new token (`--token-field`) and maybe its expiry
//! (`--expires-field`). An MCP registry taking an OIDC ID token, or a
//! platform trading an OIDC JWT for its session token, work this way.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::failure::{
    challenge_refuses_subject, challenge_wants_client, described, refuses_subject, Failure,
};
use crate::http::{printable, Answer};
use crate::issued::Issued;
use crate::lifetime;

/// The request body for `subject`.
pub fn body(config: &Config, subject: &str) -> Value {
    let mut object = Map::new();
    for (name, value) in &config.fields {
        object.insert(name.clone(), Value::String(value.clone()));
    }
    if let Some(field) = &config.json_field {
        object.insert(field.clone(), Value::String(subject.to_owned()));
    }
    Value::Object(object)
}

/// Posts the body and judges the answer.
pub fn post(
    http: &reqwest::blocking::Client,
    config: &Config,
    subject: &str,
) -> Result<Issued, Failure> {
    let body = serde_json::to_vec(&body(config, subject)).map_err(|e| e.to_string())?;
    let request = http
        .post(&config.endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body);
    let answer = Answer::of(request, &config.endpoint)?;
    judge(&answer, config, SystemTime::now())
}

/// The value at a dotted path (`a.b`).
fn at<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A 2xx answer's token and expiry; any other answer as a refusal.
pub fn judge(answer: &Answer, config: &Config, now: SystemTime) -> Result<Issued, Failure> {
    let endpoint = &config.endpoint;
    let object = answer.json_object();
    if !(200..300).contains(&answer.status) {
        let code = (object.as_ref())
            .and_then(|o| o.get("error"))
            .and_then(|v| v.as_str());
        let said = (object.as_ref())
            .and_then(described)
            .unwrap_or_else(|| format!("HTTP {} {}", answer.status, answer.excerpt()));
        let wants_client =
            answer.status == 401 && challenge_wants_client(answer.challenge.as_deref());
        if (answer.status == 401 && !wants_client)
            || code.is_some_and(refuses_subject)
            || challenge_refuses_subject(answer.challenge.as_deref())
        {
            return Err(Failure::SubjectRefused(said));
        }
        let what_to_do = if answer.status >= 500 {
            "the service has trouble; try again later"
        } else {
            "a fresh login would not change its answer: the login may not be one the service accepts (its account, domain or claims), or the request lacks a field it needs (--field)"
        };
        return Err(format!(
            "the exchange endpoint {endpoint} refused the exchange (HTTP {}): {said}; {what_to_do}",
            answer.status
        )
        .into());
    }
    let unusable = |why: String| {
        Failure::from(format!(
            "the exchange endpoint {endpoint} answered with no usable token: {why}"
        ))
    };
    // Not quoted: a 2xx body may be the token itself.
    let object = object.ok_or_else(|| {
        unusable(format!(
            "its {} bytes are not a JSON object",
            answer.body.len()
        ))
    })?;
    let token = (at(&object, &config.token_field).and_then(|v| v.as_str())).ok_or_else(|| {
        unusable(format!(
            "no string at `{}` (--token-field)",
            printable(&config.token_field)
        ))
    })?;
    let expiry = match &config.expires_field {
        Some(path) => Some(
            at(&object, path)
                .ok_or_else(|| unusable(format!("no `{}` (--expires-field)", printable(path))))?,
        ),
        None => object
            .get("expires_at")
            .or_else(|| object.get("expires_in")),
    };
    let expires_at = match expiry {
        None | Some(Value::Null) => None,
        Some(value) => Some(lifetime::from_field(value, now).map_err(unusable)?),
    };
    Issued::new(token, expires_at).map_err(unusable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::{Duration, UNIX_EPOCH};

    fn config(extra: &[&str]) -> Config {
        let mut args = vec![
            "authplug-exchange",
            "--format",
            "json",
            "--endpoint",
            "https://registry.example/auth",
            "--subject-profile",
            "work",
            "--json-field",
            "oidc_token",
        ];
        args.extend(extra);
        Config::parse_from(args)
    }

    const NOW: u64 = 1_800_000_000;

    fn judged(config: &Config, status: u16, body: &str) -> Result<Issued, Failure> {
        let answer = Answer {
            status,
            body: body.as_bytes().to_vec(),
            challenge: None,
        };
        judge(&answer, config, UNIX_EPOCH + Duration::from_secs(NOW))
    }

    #[test]
    fn the_body_holds_the_subject_and_the_fixed_fields() {
        let config = config(&["--field", "org=acme", "--field", "oidc_token=not this"]);
        assert_eq!(
            body(&config, "ID"),
            serde_json::json!({"oidc_token": "ID", "org": "acme"})
        );
    }

    #[test]
    fn the_token_and_its_expiry_are_where_the_flags_say() {
        let nested = config(&[
            "--token-field",
            "data.token",
            "--expires-field",
            "data.ends",
        ]);
        let issued = judged(
            &nested,
            200,
            r#"{"data":{"token":"reg_1","ends":"2027-01-15T09:00:00Z"}}"#,
        )
        .expect("a token");
        assert_eq!(issued.token.as_bytes(), b"reg_1");
        assert_eq!(
            issued.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(NOW + 3600))
        );
        let plain = config(&[]);
        let issued = judged(&plain, 201, r#"{"token":"t","expires_in":60}"#).expect("a token");
        assert_eq!(
            issued.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(NOW + 60))
        );
        for body in [
            r#"{"data":{}}"#,
            r#"{"data":{"token":5,"ends":1}}"#,
            r#"{"data":{"token":"t"}}"#,
            r#"{"data":{"token":"t","ends":"yesterday"}}"#,
        ] {
            assert!(
                matches!(judged(&nested, 200, body), Err(Failure::Other(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn a_401_is_the_subjects_fault_and_a_403_the_exchanges() {
        let config = config(&[]);
        assert!(matches!(
            judged(&config, 401, r#"{"message":"token expired"}"#),
            Err(Failure::SubjectRefused(why)) if why == "token expired"
        ));
        assert!(matches!(
            judged(&config, 400, r#"{"error":"expired_token"}"#),
            Err(Failure::SubjectRefused(_))
        ));
        match judged(
            &config,
            403,
            r#"{"error":"forbidden","message":"hd must be example.com"}"#,
        ) {
            Err(Failure::Other(error)) => {
                let message = error.to_string();
                assert!(
                    message.contains("HTTP 403") && message.contains("hd must be example.com"),
                    "{message}"
                );
            }
            _ => panic!("a plain refusal"),
        }
    }
}
