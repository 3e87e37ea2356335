//! A `logout` run (PROTOCOL.md rule 1): revoke the refresh token at the
//! provider (RFC 7009) when it offers a revocation endpoint, say what was
//! done, hand back nothing. Never a login, never a browser: whatever fails
//! here, the host forgets the login anyway. Also where a refresh token
//! from a login answer that failed a check is revoked (`revoke_unused`).

use authplug_protocol::plugin::{Request, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use openidconnect::core::CoreRevocableToken;
use openidconnect::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use openidconnect::http::{HeaderValue, Method};
use openidconnect::{
    AccessToken, AsyncHttpClient, HttpRequest, RefreshToken, RequestTokenError, RevocableToken,
    RevocationErrorResponseType, RevocationUrl, StandardErrorResponse,
};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::messages::say;
use crate::provider::{self, check_endpoint, Provider};
use crate::session::Session;
use crate::state::{Loaded, PluginState};
use crate::token_error::Grant;
use crate::token_http::TokenHttp;
use crate::Error;

/// The logout run. An error means the provider may still honour what the
/// state held; the host reports it and forgets the login all the same.
pub fn logout(config: &Config, request: &Request, now: u64) -> Result<Response, Error> {
    let state = match PluginState::load(&request.state, &config.issuer, &config.client_id) {
        Loaded::Usable(state) => *state,
        Loaded::Empty => {
            say("logged out: no login was held");
            return Ok(Response::nothing());
        }
        Loaded::Ignored(why) => {
            say(&format!("{why}; nothing of it can be revoked"));
            return Ok(Response::nothing());
        }
    };
    // RFC 7009 §2.1: revoking a refresh token should revoke the grant's
    // access tokens too; an access token alone is revoked when that is all
    // there is (client credentials).
    let token = match (&state.refresh_token, &state.access_token) {
        (Some(refresh), _) => {
            CoreRevocableToken::RefreshToken(RefreshToken::new(refresh.expose_secret().clone()))
        }
        (None, Some(access)) if access.valid_beyond(now, 0) => {
            CoreRevocableToken::AccessToken(AccessToken::new(access.value.expose_secret().clone()))
        }
        (None, _) => {
            say("logged out: no refresh token was held, so there is nothing to revoke at the provider");
            return Ok(Response::nothing());
        }
    };
    let what = match token {
        CoreRevocableToken::RefreshToken(_) => "refresh token",
        _ => "access token",
    };
    crate::runtime()?.block_on(async {
        let http = provider::http_client(config)?;
        let provider =
            Provider::load_or_discover(config, state.provider.as_ref(), &http, now).await?;
        let Some(endpoint) = provider.revocation_endpoint().cloned() else {
            say(&format!(
                "logged out here; the provider lists no revocation endpoint (RFC 7009) in its discovery document or its authorization server metadata, so its {what} stays valid there until it expires or you end the session at the provider (if it has one it does not list, give it with --revocation-endpoint)"
            ));
            return Ok(Response::nothing());
        };
        check_endpoint(config, "revocation_endpoint", endpoint.url())?;
        let host = endpoint.url().host_str().unwrap_or("the provider").to_owned();
        let session = Session::new(config, http, provider, state, now);
        session.revoke(endpoint, token).await?;
        say(&format!("logged out: the {what} was revoked at {host}"));
        Ok(Response::nothing())
    })
}

impl Session<'_> {
    /// A refresh token from a login answer that could not be used (it
    /// failed a check, or could not be checked): not used,
    /// and not left live at the provider with nobody holding it. Best
    /// effort; says what became of it.
    pub async fn revoke_unused(&self, refresh_token: &RefreshToken) {
        let Some(endpoint) = self.provider.revocation_endpoint().cloned() else {
            say("the provider's login answer could not be used, nor its refresh token; the provider lists no revocation endpoint, so that token stays valid there until it expires");
            return;
        };
        if let Err(unsafe_endpoint) =
            check_endpoint(self.config, "revocation_endpoint", endpoint.url())
        {
            say(&format!("the provider's login answer could not be used, nor its refresh token, which was not sent to the revocation endpoint either: {unsafe_endpoint}"));
            return;
        }
        let token = CoreRevocableToken::RefreshToken(refresh_token.clone());
        match self.revoke(endpoint, token).await {
            Ok(()) => say("the provider's login answer could not be used, so its refresh token was revoked, not used"),
            Err(error) => say(&format!(
                "the provider's login answer could not be used, nor its refresh token; revoking that failed too ({error}), so it stays valid there until it expires"
            )),
        }
    }

    /// The RFC 7009 §2.1 request, through the same HTTP client as every
    /// token request (no redirects; https unless the issuer is loopback
    /// http). oauth2's `revoke_token` would do, but it refuses any http
    /// endpoint, and the dev IdP and local providers are loopback http.
    async fn revoke(
        &self,
        endpoint: RevocationUrl,
        token: CoreRevocableToken,
    ) -> Result<(), Error> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token.secret());
        if let Some(hint) = token.type_hint() {
            form.append_pair("token_type_hint", hint);
        }
        let mut request = HttpRequest::new(Vec::new());
        // RFC 6749 §2.3.1, as for the token endpoint: a confidential client
        // by HTTP Basic (each part form-encoded), a public one by name.
        match &self.config.client_secret {
            Some(client_secret) => {
                let encode = |text: &str| {
                    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
                };
                let credentials = Zeroizing::new(format!(
                    "{}:{}",
                    encode(&self.config.client_id),
                    encode(client_secret.secret())
                ));
                let value =
                    Zeroizing::new(format!("Basic {}", BASE64.encode(credentials.as_bytes())));
                let mut header = HeaderValue::from_str(&value)
                    .map_err(|_| "the client secret cannot be sent in a header".to_owned())?;
                header.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, header);
            }
            None => {
                form.append_pair("client_id", &self.config.client_id);
            }
        }
        let body = Zeroizing::new(form.finish());
        *request.body_mut() = body.as_bytes().to_vec();
        *request.method_mut() = Method::POST;
        *request.uri_mut() = endpoint
            .url()
            .as_str()
            .parse()
            .map_err(|_| format!("the revocation endpoint {} is not a URL", endpoint.url()))?;
        request.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = TokenHttp::new(&self.http);
        let outcome = http.call(request).await;
        let error = match outcome {
            // §2.2: 200 whether or not the token was still valid.
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => match serde_json::from_slice::<RevocationError>(response.body()) {
                Ok(refusal) => RequestTokenError::ServerResponse(refusal),
                Err(_) => RequestTokenError::Other("not an OAuth error response".to_owned()),
            },
            Err(error) => RequestTokenError::Request(error),
        };
        Err(self.refusal(Grant::Revoke, error, &http).into())
    }
}

/// An RFC 7009 §2.2.1 error answer.
type RevocationError = StandardErrorResponse<RevocationErrorResponseType>;
