//! The device authorization grant (RFC 8628): for machines without a
//! browser. The user opens a URL elsewhere and enters a code.

use std::io::IsTerminal;

use openidconnect::core::CoreDeviceAuthorizationResponse;
use openidconnect::{DeviceCodeErrorResponseType, RequestTokenError, Scope};

use crate::verify::ExpectNonce;
use crate::{request_error, say, Error, Session};

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

    // oauth2 polls at the given interval, adds 5 s on `slow_down`, backs
    // off on network errors (doubling, at most 10 s) and stops at this
    // limit with `expired_token`: the wait is bounded whatever happens.
    let limit = config.login_timeout().min(details.expires_in());
    let poll = client
        .exchange_device_access_token(&details)
        .map_err(|e| format!("the provider has no token endpoint: {e}"))?
        .request_async(&session.http, tokio::time::sleep, Some(limit))
        .await;
    let response = match poll {
        Ok(response) => response,
        Err(RequestTokenError::ServerResponse(r)) => {
            let why = match r.error() {
                DeviceCodeErrorResponseType::AccessDenied => "the login was denied".to_owned(),
                DeviceCodeErrorResponseType::ExpiredToken => format!(
                    "the device login was not completed within {} seconds (or the provider was unreachable); run again to retry",
                    limit.as_secs()
                ),
                _ => "the provider refused the device login".to_owned(),
            };
            return Err(format!("{why} ({r})").into());
        }
        Err(e) => return Err(request_error("waiting for the device login", e)),
    };
    session
        .absorb(&response, ExpectNonce::Refresh, None, true)
        .await
}
