//! The device authorization grant (RFC 8628): for machines without a
//! browser. The user opens a URL elsewhere and enters a code.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use openidconnect::core::CoreDeviceAuthorizationResponse;
use openidconnect::{DeviceCodeErrorResponseType, RequestTokenError, Scope};

use crate::verify::ExpectNonce;
use crate::{request_error, say, Error, Session};

/// Polls that fail on the network are retried this many times, then the
/// flow gives up rather than spin.
const NETWORK_RETRIES: u32 = 3;

pub async fn device_login(session: &mut Session<'_>) -> Result<(), Error> {
    let config = session.config;
    let endpoint = session
        .provider
        .device_endpoint()
        .cloned()
        .ok_or("the provider does not support the device flow (no device_authorization_endpoint in its discovery document)")?;
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
    if let Some(resource) = &config.resource {
        request = request.add_extra_param("resource", resource.clone());
    }
    let details: CoreDeviceAuthorizationResponse = request
        .request_async(&session.http)
        .await
        .map_err(|e| request_error("starting the device flow", e))?;

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
                eprintln!("{art}");
            }
        }
    }

    let deadline = Instant::now() + config.login_timeout().min(details.expires_in());
    let mut network_failures = 0;
    let response = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!(
                "the device login was not completed within {} seconds; run again to retry",
                config.login_timeout().min(details.expires_in()).as_secs()
            )
            .into());
        }
        let poll = client
            .exchange_device_access_token(&details)
            .map_err(|e| format!("the provider has no token endpoint: {e}"))?
            .request_async(&session.http, tokio::time::sleep, Some(remaining))
            .await;
        match poll {
            Ok(response) => break response,
            Err(RequestTokenError::ServerResponse(r)) => {
                let why = match r.error() {
                    DeviceCodeErrorResponseType::AccessDenied => "the login was denied",
                    DeviceCodeErrorResponseType::ExpiredToken => {
                        "the device code expired before the login was completed; run again"
                    }
                    _ => "the provider refused the device login",
                };
                return Err(format!("{why} ({r})").into());
            }
            Err(RequestTokenError::Request(e)) if network_failures < NETWORK_RETRIES => {
                network_failures += 1;
                say(&format!(
                    "polling the token endpoint failed ({}); retrying",
                    crate::error_chain(&e)
                ));
                tokio::time::sleep(details.interval().max(Duration::from_secs(1))).await;
            }
            Err(RequestTokenError::Other(why))
                if why.contains("timed out") || why.contains("timeout") =>
            {
                return Err("the device login was not completed in time; run again to retry".into())
            }
            Err(e) => return Err(request_error("waiting for the device login", e)),
        }
    };
    session
        .absorb(&response, ExpectNonce::Refresh, None, true)
        .await
}
