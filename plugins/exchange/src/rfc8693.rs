//! RFC 8693 OAuth 2.0 Token Exchange: the request (§2.1), the answer
//! (§2.2.1) and its errors (§2.2.2, which are RFC 6749 §5.2's); and the
//! refresh grant (RFC 6749 §6) for an endpoint that hands out a refresh
//! token with the exchanged one.

use std::time::SystemTime;

use authplug_protocol::Secret;
use base64::Engine as _;

use crate::config::{token_type_uri, ClientAuth, Config};
use crate::failure::{
    challenge_refuses_subject, challenge_wants_client, described, refuses_subject, Failure,
};
use crate::http::{printable, Answer};
use crate::issued::Issued;
use crate::lifetime;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The form of an exchange of `subject`.
pub fn exchange_form(config: &Config, subject: &str) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("grant_type", GRANT_TYPE.to_owned()),
        ("subject_token", subject.to_owned()),
        (
            "subject_token_type",
            token_type_uri(&config.subject_token_type),
        ),
    ];
    form.extend(
        config
            .audience
            .iter()
            .map(|audience| ("audience", audience.clone())),
    );
    form.extend(
        config
            .resource
            .iter()
            .map(|resource| ("resource", resource.clone())),
    );
    if let Some(scope) = scopes(config) {
        form.push(("scope", scope));
    }
    if let Some(requested) = &config.requested_token_type {
        form.push(("requested_token_type", token_type_uri(requested)));
    }
    form
}

/// The form of a refresh with a refresh token the endpoint gave before.
pub fn refresh_form(
    config: &Config,
    refresh_token: &Secret<String>,
) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.expose_secret().clone()),
    ];
    if let Some(scope) = scopes(config) {
        form.push(("scope", scope));
    }
    form
}

fn scopes(config: &Config) -> Option<String> {
    let scope = config.scope.as_deref()?;
    let words: Vec<&str> = scope.split([',', ' ']).filter(|s| !s.is_empty()).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Posts `form` (with the client's credentials) and judges the answer.
pub fn post(
    http: &reqwest::blocking::Client,
    config: &Config,
    mut form: Vec<(&'static str, String)>,
) -> Result<Issued, Failure> {
    let mut request = http
        .post(&config.endpoint)
        .header(reqwest::header::ACCEPT, "application/json");
    match (&config.client_id, &config.client_secret, config.client_auth) {
        (Some(id), Some(secret), ClientAuth::Basic) => {
            // RFC 6749 §2.3.1: each part form-encoded before Base64.
            let encode = |text: &str| {
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
            };
            let pair = Secret::new(format!("{}:{}", encode(id), encode(secret.expose_secret())));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair.expose_secret());
            let mut value = reqwest::header::HeaderValue::try_from(format!("Basic {basic}"))
                .map_err(|_| "the client credentials cannot be put in a header")?;
            value.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        (Some(id), Some(secret), ClientAuth::Post) => {
            form.push(("client_id", id.clone()));
            form.push(("client_secret", secret.expose_secret().clone()));
        }
        (Some(id), None, _) => form.push(("client_id", id.clone())),
        (None, _, _) => {}
    }
    let answer = Answer::of(request.form(&form), &config.endpoint)?;
    judge(&answer, config, SystemTime::now())
}

/// An answer as RFC 8693 §2.2 says it comes.
pub fn judge(answer: &Answer, config: &Config, now: SystemTime) -> Result<Issued, Failure> {
    let endpoint = &config.endpoint;
    let object = answer.json_object();
    if !(200..300).contains(&answer.status) {
        return Err(refusal(answer, object.as_ref(), endpoint));
    }
    let Some(object) = object else {
        // Not quoted: a 2xx body may be the token itself.
        return Err(format!(
            "the exchange endpoint {endpoint} answered HTTP {} with {} bytes that are no JSON object",
            answer.status,
            answer.body.len()
        )
        .into());
    };
    let unusable = |why: String| {
        Failure::from(format!(
            "the exchange endpoint {endpoint} answered with no usable token: {why}"
        ))
    };
    let token = (object.get("access_token").and_then(|v| v.as_str()))
        .ok_or_else(|| unusable("no access_token string".into()))?;
    match object.get("token_type").and_then(|v| v.as_str()) {
        Some(kind) if kind.eq_ignore_ascii_case("bearer") || kind == "N_A" => {}
        Some(kind) => {
            return Err(unusable(format!(
                "its token_type is {}, and authplug hands out bearer tokens only",
                printable(kind)
            )))
        }
        None => {
            return Err(unusable(
                "no token_type (RFC 8693 §2.2.1 requires one)".into(),
            ))
        }
    }
    if let Some(requested) = &config.requested_token_type {
        let issued = object.get("issued_token_type").and_then(|v| v.as_str());
        if issued.is_some_and(|issued| issued != token_type_uri(requested)) {
            return Err(unusable(format!(
                "it issued {} where {} was asked for",
                printable(issued.unwrap_or_default()),
                token_type_uri(requested)
            )));
        }
    }
    let expires_at = match object.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(lifetime::from_lifetime(value, now).map_err(unusable)?),
    };
    let mut issued = Issued::new(token, expires_at).map_err(unusable)?;
    issued.refresh_token = (object.get("refresh_token").and_then(|v| v.as_str()))
        .filter(|token| !token.is_empty())
        .map(|token| Secret::new(token.to_owned()));
    Ok(issued)
}

/// An error answer: the subject token's fault, or the exchange's.
fn refusal(
    answer: &Answer,
    object: Option<&serde_json::Map<String, serde_json::Value>>,
    endpoint: &str,
) -> Failure {
    let code = object.and_then(|o| o.get("error")).and_then(|v| v.as_str());
    let words = object.and_then(described);
    let said = match (&words, code) {
        (Some(words), Some(code)) if words != code => format!("{} ({words})", printable(code)),
        (Some(words), _) => words.clone(),
        (None, _) => format!("HTTP {} {}", answer.status, answer.excerpt()),
    };
    // A 401 that asks for HTTP Basic is about the client's credentials
    // (RFC 6749 §5.2's invalid_client), not the subject token.
    let wants_client = answer.status == 401 && challenge_wants_client(answer.challenge.as_deref());
    if code.is_some_and(refuses_subject)
        || (code.is_none()
            && !wants_client
            && (answer.status == 401 || challenge_refuses_subject(answer.challenge.as_deref())))
    {
        return Failure::SubjectRefused(said);
    }
    let what_to_do = match code {
        Some("invalid_target") => "it will not issue a token for that audience or resource (--audience, --resource)",
        Some("invalid_scope") => "it will not grant those scopes (--scope)",
        None if wants_client => {
            "it asks for client credentials (--client-id, AUTHPLUG_EXCHANGE_CLIENT_SECRET, --client-auth)"
        }
        Some("invalid_client" | "unauthorized_client") => {
            "it does not accept this client for token exchange (--client-id, AUTHPLUG_EXCHANGE_CLIENT_SECRET, --client-auth)"
        }
        Some("unsupported_grant_type") => {
            "it does not do RFC 8693 token exchange (if the service defines its own exchange, use --format json)"
        }
        Some("invalid_request") => "it found the request malformed (--subject-token-type, --requested-token-type)",
        _ if answer.status >= 500 => "the service has trouble; try again later",
        _ => "a fresh login would not change its answer",
    };
    Failure::Other(
        format!("the exchange endpoint {endpoint} refused the exchange: {said}; {what_to_do}")
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::{Duration, UNIX_EPOCH};

    fn config(extra: &[&str]) -> Config {
        let mut args = vec![
            "authplug-exchange",
            "--endpoint",
            "https://sts.example/token",
            "--subject-profile",
            "work",
        ];
        args.extend(extra);
        Config::parse_from(args)
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            challenge: None,
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn judged(status: u16, body: &str) -> Result<Issued, Failure> {
        judge(
            &answer(status, body),
            &config(&["--requested-token-type", "access_token"]),
            UNIX_EPOCH + Duration::from_secs(NOW),
        )
    }

    fn other(result: Result<Issued, Failure>) -> String {
        match result {
            Err(Failure::Other(error)) => error.to_string(),
            Err(Failure::SubjectRefused(why)) => panic!("subject refused: {why}"),
            Ok(issued) => panic!("a token: {issued:?}"),
        }
    }

    #[test]
    fn a_good_answer_gives_the_token_its_expiry_and_its_refresh_token() {
        let issued = judged(
            200,
            r#"{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"bearer","expires_in":"60","refresh_token":"rt"}"#,
        )
        .expect("a token");
        assert_eq!(issued.token.as_bytes(), b"at");
        assert_eq!(
            issued.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(NOW + 60))
        );
        assert_eq!(issued.refresh_token.expect("kept").expose_secret(), "rt");
        let na = judged(200, r#"{"access_token":"at","token_type":"N_A"}"#).expect("N_A");
        assert_eq!(na.expires_at, None);
    }

    #[test]
    fn a_hostile_or_broken_answer_gives_no_token() {
        for (body, said) in [
            (r#"{"token_type":"Bearer"}"#, "no access_token"),
            (r#"{"access_token":"at"}"#, "no token_type"),
            (
                r#"{"access_token":"at","token_type":"DPoP"}"#,
                "bearer tokens only",
            ),
            (r#"{"access_token":"a t","token_type":"Bearer"}"#, "spaces"),
            (r#"{"access_token":"","token_type":"Bearer"}"#, "empty"),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":-1}"#,
                "lifetime",
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":1e12}"#,
                "lifetime",
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#,
                "where",
            ),
            ("<html>hello</html>", "no JSON object"),
            ("secret-token-as-text", "20 bytes that are no JSON object"),
            ("[1]", "no JSON object"),
        ] {
            let message = other(judged(200, body));
            assert!(message.contains(said), "{body}: {message}");
        }
    }

    #[test]
    fn a_stale_subject_is_told_from_a_refused_exchange() {
        for (status, body) in [
            (
                400,
                r#"{"error":"invalid_grant","error_description":"subject expired"}"#,
            ),
            (401, r#"{"error":"invalid_token"}"#),
            (401, ""),
        ] {
            assert!(
                matches!(judged(status, body), Err(Failure::SubjectRefused(_))),
                "{status} {body}"
            );
        }
        for (status, body, hint) in [
            (
                400,
                r#"{"error":"invalid_target","error_description":"no"}"#,
                "--audience",
            ),
            (401, r#"{"error":"invalid_client"}"#, "--client-id"),
            (
                400,
                r#"{"error":"unsupported_grant_type"}"#,
                "--format json",
            ),
            (400, r#"{"error":"invalid_scope"}"#, "--scope"),
            (503, "<html>down\u{1b}[31m</html>", "try again later"),
        ] {
            let message = other(judged(status, body));
            assert!(message.contains(hint), "{status} {body}: {message}");
            assert!(
                !message.contains('\u{1b}'),
                "no control characters: {message}"
            );
        }
        let basic = Answer {
            status: 401,
            body: Vec::new(),
            challenge: Some("Basic realm=\"sts\"".into()),
        };
        let message = other(judge(
            &basic,
            &config(&[]),
            UNIX_EPOCH + Duration::from_secs(NOW),
        ));
        assert!(message.contains("asks for client credentials"), "{message}");
    }
}
