//! The device authorization grant (RFC 8628): for machines without a
//! browser. The user opens a URL elsewhere and enters a code.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openidconnect::core::CoreDeviceAuthorizationResponse;
use openidconnect::{
    AsyncHttpClient, DeviceCodeErrorResponseType, HttpRequest, RequestTokenError, Scope,
};
use tokio::sync::Notify;

use crate::messages::{error_chain, printable, say};
use crate::session::Session;
use crate::token_error::Grant;
use crate::token_http::TokenHttp;
use crate::verify::ExpectNonce;
use crate::Error;

pub async fn device_login(session: &mut Session<'_>) -> Result<(), Error> {
    let config = session.config;
    let endpoint = session
        .provider
        .device_endpoint()
        .cloned()
        .ok_or("the provider does not support the device flow: it lists no device_authorization_endpoint in its discovery document or its authorization server metadata (RFC 8414); if it has one it does not list, give it with --device-endpoint")?;
    let client = session
        .provider
        .client(config)
        .set_device_authorization_url(endpoint);
    let mut request = client
        .exchange_device_code()
        .add_scope(Scope::new("openid".into()));
    for scope in session.login_scopes() {
        request = request.add_scope(Scope::new(scope));
    }
    for (name, value) in config.login_params() {
        request = request.add_extra_param(name, value);
    }
    let http = TokenHttp::new(&session.http);
    let details: CoreDeviceAuthorizationResponse = (request.request_async(&http).await)
        .map_err(|e| session.refusal(Grant::DeviceStart, e, &http))?;

    // The user is sent there to type the code and log in: it must be as
    // safe as the issuer (RFC 8628 §3.2 names an https URI).
    let mut sent_to = vec![("verification_uri", details.verification_uri().url().clone())];
    if let Some(complete) = details.verification_uri_complete() {
        let url = url::Url::parse(complete.secret()).map_err(|e| {
            format!("the provider's verification_uri_complete is not a URL ({e}); refusing it")
        })?;
        sent_to.push(("verification_uri_complete", url));
    }
    for (name, url) in &sent_to {
        crate::provider::check_endpoint(config, name, url)?;
    }
    let uri = details.verification_uri().as_str();
    say(&format!(
        "to log in, visit {uri} and enter the code {}",
        details.user_code().secret()
    ));
    if let Some(complete) = details.verification_uri_complete() {
        say(&format!("or visit {}", complete.secret()));
        if std::io::stderr().is_terminal() {
            if let Ok(code) = qrcode::QrCode::new(complete.secret().as_bytes()) {
                let art = code
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .dark_color(qrcode::render::unicode::Dense1x2::Light)
                    .light_color(qrcode::render::unicode::Dense1x2::Dark)
                    .build();
                crate::messages::say_raw(&art);
            }
        }
    }

    // oauth2 polls at the given interval, adds 5 s on `slow_down` and backs
    // off on network errors (doubling, at most 10 s), but it sleeps before
    // it looks at its deadline and retries network errors silently. So the
    // sleep is capped, the whole wait is bounded here, and network errors
    // are counted: a provider that stays unreachable ends the wait with
    // what went wrong.
    let limit = config.login_timeout().min(details.expires_in());
    let health = Arc::new(Mutex::new(PollHealth::default()));
    let gave_up = Arc::new(Notify::new());
    let polling_client = |request: HttpRequest| {
        let http = &http;
        let health = Arc::clone(&health);
        let gave_up = Arc::clone(&gave_up);
        async move {
            let result = http.call(request).await;
            let mut health = health.lock().unwrap_or_else(|e| e.into_inner());
            match &result {
                Ok(_) => *health = PollHealth::default(),
                Err(e) => {
                    health.failures_in_a_row += 1;
                    health.last_error = Some(error_chain(e));
                    if health.failures_in_a_row >= MAX_NETWORK_FAILURES {
                        gave_up.notify_one();
                    }
                }
            }
            result
        }
    };
    let poll = client
        .exchange_device_access_token(&details)
        .map_err(|e| format!("the provider has no token endpoint: {e}"))?
        .request_async(&polling_client, capped_sleep, Some(limit));
    let outcome = tokio::select! {
        // A second's grace lets the provider's own `expired_token`, or
        // oauth2's deadline, speak first; this is the hard stop.
        outcome = tokio::time::timeout(limit + Duration::from_secs(1), poll) => outcome.ok(),
        _ = gave_up.notified() => None,
    };
    let health = health.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let response = match outcome {
        Some(Ok(response)) => response,
        // Any answer resets the count: the last poll got none, so the wait
        // ended (here or in oauth2) for want of a provider.
        _ if health.failures_in_a_row > 0 => {
            let polls = match health.failures_in_a_row {
                1 => "the last poll".to_owned(),
                n => format!("the last {n} polls"),
            };
            return Err(format!(
                "waiting for the device login: the provider could not be reached ({polls} failed): {}",
                health.last_error.unwrap_or_default()
            )
            .into());
        }
        None => return Err(not_completed(limit).into()),
        Some(Err(RequestTokenError::ServerResponse(r))) => {
            let why = match r.error() {
                DeviceCodeErrorResponseType::AccessDenied => "the login was denied".to_owned(),
                DeviceCodeErrorResponseType::ExpiredToken => not_completed(limit),
                _ => "the provider refused the device login".to_owned(),
            };
            return Err(format!("{why} ({})", printable(&r.to_string())).into());
        }
        Some(Err(e)) => {
            return Err(session
                .login_refusal(Grant::DevicePoll, e, &http)
                .await
                .into())
        }
    };
    // RFC 8628 §3.5 and RFC 6749 §5.1 require no ID token here: a provider
    // whose device flow is plain OAuth gives none (see `id_token_by_refresh`).
    session
        .absorb_login(&response, ExpectNonce::Refresh(None), false)
        .await?;
    // A new login, which sent no nonce.
    session.state.login_nonce = None;
    Ok(())
}

/// The longest sleep between polls, whatever `interval` the provider asks
/// for: one huge sleep must not outlast the login timeout.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Network errors in a row after which the wait ends with the error.
const MAX_NETWORK_FAILURES: u32 = 3;

async fn capped_sleep(interval: Duration) {
    tokio::time::sleep(capped(interval)).await
}

fn capped(interval: Duration) -> Duration {
    interval.min(MAX_POLL_INTERVAL)
}

/// How the polls are going: network errors since the last answer.
#[derive(Clone, Default)]
struct PollHealth {
    failures_in_a_row: u32,
    last_error: Option<String>,
}

fn not_completed(limit: Duration) -> String {
    format!(
        "the device login was not completed within {} seconds; run again to retry",
        limit.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_interval_is_capped() {
        assert_eq!(capped(Duration::from_secs(100_000)), MAX_POLL_INTERVAL);
        assert_eq!(capped(Duration::from_secs(5)), Duration::from_secs(5));
    }
}
