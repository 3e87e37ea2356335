//! `authplug-oidc`: the reference authplug plugin for OpenID Connect.
//!
//! It logs a person in once (browser with PKCE, or the device flow), keeps
//! the refresh token in its authplug state, and from then on hands out fresh
//! ID or access tokens silently. Machines use client credentials. It is
//! built on `openidconnect` and adds what that crate leaves to its users:
//! the `iat` and `azp` checks, RFC 9207 callback `iss` checks, key rotation,
//! a loopback listener, and the authplug protocol (through the SDK).
//!
//! What it is not: it does not cache tokens across hosts or decide when a
//! server rejected one (the broker does), and it speaks no protocol of its
//! own: stdin, stdout and fd 3 are the protocol crate's business.

pub mod browser;
pub mod callback;
pub mod config;
pub mod device;
pub mod login;
pub mod provider;
pub mod state;
pub mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

use authplug_protocol::plugin::{Plugin, Request, Response};
use authplug_protocol::{Reason, Token};
use openidconnect::core::{CoreErrorResponseType, CoreTokenResponse};
use openidconnect::{
    ErrorResponse, OAuth2TokenResponse, RefreshToken, RequestTokenError, Scope, TokenResponse,
};

use config::{Config, Flow, TokenKind};
use provider::Provider;
use state::{Loaded, PluginState, StoredToken};
use verify::{ExpectNonce, VerifyError};

pub type Error = authplug_protocol::plugin::Error;

/// The plugin: a validated configuration.
pub struct OidcPlugin {
    config: Config,
}

impl OidcPlugin {
    pub fn new(config: Config) -> Result<Self, String> {
        config.validate()?;
        Ok(OidcPlugin { config })
    }
}

impl Plugin for OidcPlugin {
    fn run(&mut self, request: Request) -> Result<Response, Error> {
        // Messages quote the provider (errors, claims, URLs); whatever got
        // through, no control character reaches the user's terminal.
        run(&self.config, request).map_err(|e| Error::from(without_controls(&error_chain(&*e))))
    }
}

/// One run: the cached token if it will do (no network at all), else a
/// refresh, else a login.
pub fn run(config: &Config, request: Request) -> Result<Response, Error> {
    let now = unix_now();
    let state = match PluginState::load(&request.state, &config.issuer, &config.client_id) {
        Loaded::Usable(state) => *state,
        Loaded::Empty => PluginState::new(&config.issuer, &config.client_id),
        Loaded::Ignored(why) => {
            say(&format!("{why}; starting a new session"));
            PluginState::new(&config.issuer, &config.client_id)
        }
    };
    if request.reason != Reason::Rejected {
        if let Some(token) = cached_token(config, &state, now) {
            return Ok(Response::new(token, request.state));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_online(config, state, &request, now))
}

fn wanted(config: &Config) -> TokenKind {
    if config.flow == Flow::ClientCredentials {
        TokenKind::Access
    } else {
        config.token
    }
}

fn cached_token(config: &Config, state: &PluginState, now: u64) -> Option<Token> {
    let stored = match wanted(config) {
        TokenKind::Id => state.id_token.as_ref(),
        TokenKind::Access if state.access_token_resource == config.resource => {
            state.access_token.as_ref()
        }
        TokenKind::Access => None,
    }?;
    stored
        .valid_beyond(now, config.skew)
        .then(|| Token::from(stored.value.expose_secret().as_str()))
}

async fn run_online(
    config: &Config,
    mut state: PluginState,
    request: &Request,
    now: u64,
) -> Result<Response, Error> {
    let http = provider::http_client(config)?;
    let provider = Provider::load_or_discover(config, state.provider.as_ref(), &http, now).await?;
    let rejected = request.reason == Reason::Rejected;
    if rejected {
        // The token we would reuse was refused: never hand it out again.
        match wanted(config) {
            TokenKind::Id => state.id_token = None,
            TokenKind::Access => state.access_token = None,
        }
    }
    let mut session = Session {
        config,
        http,
        provider,
        state,
        now,
    };

    if config.flow == Flow::ClientCredentials {
        session.client_credentials().await?;
        return session.finish();
    }

    if session.state.refresh_token.is_some() {
        match session.refresh().await {
            Ok(true) => return session.finish(),
            Ok(false) => say("the refresh gave no new ID token and the old one has expired; a new login is needed"),
            Err(RefreshFailure::Refused(why)) => {
                say(&format!("the refresh token was refused ({why}); a new login is needed"));
                session.state.refresh_token = None;
            }
            Err(RefreshFailure::Other(e)) => return Err(e),
        }
    }

    if !request.interactive {
        return Err(
            "a login is needed (no valid token or refresh token in the state), but AUTHPLUG_INTERACTIVE=0 \
             forbids opening a browser or prompting; run the same command from a terminal to log in"
                .into(),
        );
    }
    match config.flow {
        Flow::Device => device::device_login(&mut session).await?,
        Flow::Browser => login::browser_login(&mut session, !config.no_browser).await?,
        // The user asked for the login URL, to open it themselves.
        Flow::Auto if config.no_browser => login::browser_login(&mut session, false).await?,
        Flow::Auto if browser::can_open(config.browser_command.as_deref()) => {
            login::browser_login(&mut session, true).await?
        }
        Flow::Auto if session.provider.device_endpoint().is_some() => {
            say("no browser can be opened here, so using the device flow");
            device::device_login(&mut session).await?
        }
        Flow::Auto => login::browser_login(&mut session, false).await?,
        Flow::ClientCredentials => unreachable!("handled above"),
    }
    session.finish()
}

enum RefreshFailure {
    /// The provider refused the refresh token (`invalid_grant`): log in again.
    Refused(String),
    Other(Error),
}

/// Everything a run that talks to the provider needs.
pub struct Session<'a> {
    pub config: &'a Config,
    pub http: reqwest::Client,
    pub provider: Provider,
    pub state: PluginState,
    pub now: u64,
}

impl Session<'_> {
    /// The scopes for a login besides `openid` (which each flow adds):
    /// as configured, plus `offline_access` when the provider lists it (for
    /// a refresh token).
    pub fn login_scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for scope in &self.config.scopes {
            let scope = scope.trim();
            if !scope.is_empty() && scope != "openid" && !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if self.provider.supports_scope("offline_access")
            && !scopes.iter().any(|s| s == "offline_access")
        {
            scopes.push("offline_access".into());
        }
        scopes
    }

    /// Takes a token response into the state, after checking its ID token.
    /// `id_token_required`: a response without one is a failure.
    pub async fn absorb(
        &mut self,
        response: &CoreTokenResponse,
        nonce: ExpectNonce<'_>,
        expected_subject: Option<&str>,
        id_token_required: bool,
    ) -> Result<(), Error> {
        let verified = match response.id_token() {
            Some(id_token) => {
                let mut attempt = 0;
                loop {
                    let result = verify::verify_id_token(
                        id_token,
                        &self.provider,
                        &self.config.client_id,
                        self.config.skew,
                        nonce,
                        expected_subject,
                    );
                    match result {
                        Err(VerifyError::UnknownKey) if attempt == 0 => {
                            attempt += 1;
                            self.provider.refetch_jwks(&self.http, self.now).await?;
                        }
                        Err(e) => return Err(e.into()),
                        Ok(verified) => break Some((verified, id_token.to_string())),
                    }
                }
            }
            None if id_token_required && self.config.flow != Flow::ClientCredentials => {
                return Err(
                    "the token response has no ID token (is `openid` among the client's scopes?)"
                        .into(),
                )
            }
            None => None,
        };
        if let Some((verified, raw)) = verified {
            self.state.subject = Some(verified.subject);
            self.state.id_token = Some(StoredToken::new(raw, Some(verified.expires_at)));
        }
        let expires_at = response
            .expires_in()
            .map(|d| self.now.saturating_add(d.as_secs()));
        self.state.access_token = Some(StoredToken::new(
            response.access_token().secret().clone(),
            expires_at,
        ));
        self.state.access_token_resource = self.config.resource.clone();
        if let Some(refresh) = response.refresh_token() {
            // Rotation: the new one replaces the old, which is now spent.
            self.state.refresh_token =
                Some(authplug_protocol::Secret::new(refresh.secret().clone()));
        }
        Ok(())
    }

    /// The refresh grant. `Ok(false)`: it worked, but no usable ID token.
    async fn refresh(&mut self) -> Result<bool, RefreshFailure> {
        let Some(refresh_token) = self.state.refresh_token.as_ref() else {
            return Ok(false);
        };
        let refresh_token = RefreshToken::new(refresh_token.expose_secret().clone());
        let client = self.provider.client(self.config);
        let mut request = client.exchange_refresh_token(&refresh_token).map_err(|e| {
            RefreshFailure::Other(format!("the provider has no token endpoint: {e}").into())
        })?;
        if let Some(resource) = &self.config.resource {
            request = request.add_extra_param("resource", resource.clone());
        }
        let response = match request.request_async(&self.http).await {
            Ok(response) => response,
            Err(RequestTokenError::ServerResponse(r))
                if *r.error() == CoreErrorResponseType::InvalidGrant =>
            {
                return Err(RefreshFailure::Refused(printable(&r.to_string())))
            }
            Err(e) => {
                return Err(RefreshFailure::Other(request_error(
                    "refreshing the token",
                    e,
                )))
            }
        };
        let previous_subject = self.state.subject.clone();
        if response.id_token().is_none() {
            // Keep the old ID token only while it is still good.
            let old_valid = self
                .state
                .id_token
                .as_ref()
                .is_some_and(|t| t.valid_beyond(self.now, self.config.skew));
            if !old_valid {
                self.state.id_token = None;
            }
        }
        self.absorb(
            &response,
            ExpectNonce::Refresh,
            previous_subject.as_deref(),
            false,
        )
        .await
        .map_err(RefreshFailure::Other)?;
        Ok(match self.config.token {
            TokenKind::Id => self.state.id_token.is_some(),
            TokenKind::Access => true,
        })
    }

    async fn client_credentials(&mut self) -> Result<(), Error> {
        let client = self.provider.client(self.config);
        let mut request = client
            .exchange_client_credentials()
            .map_err(|e| format!("the provider has no token endpoint: {e}"))?;
        // OIDC's user scopes mean nothing for a machine; send only the rest.
        for scope in &self.config.scopes {
            if !matches!(
                scope.as_str(),
                "openid" | "profile" | "email" | "address" | "phone" | "offline_access" | ""
            ) {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        if let Some(resource) = &self.config.resource {
            request = request.add_extra_param("resource", resource.clone());
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|e| request_error("the client credentials grant", e))?;
        self.absorb(&response, ExpectNonce::Refresh, None, false)
            .await
    }

    /// The token to print and the state to keep.
    fn finish(self) -> Result<Response, Error> {
        let mut state = self.state;
        state.provider = Some(self.provider.to_cache()?);
        let token = match wanted(self.config) {
            TokenKind::Id => state.id_token.as_ref(),
            TokenKind::Access => state.access_token.as_ref(),
        }
        .ok_or("the provider returned no token of the kind asked for (--token)")?;
        let token = Token::from(token.value.expose_secret().as_str());
        Ok(Response::new(token, state.to_state()?))
    }
}

/// Says something to the user, on stderr (never a token or secret), with
/// no control characters (messages quote the provider).
pub fn say(message: &str) {
    eprintln!("authplug-oidc: {}", without_controls(message));
}

fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An error and its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
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

/// A failed token-endpoint request as a message. A body that is not a
/// token response is only described, never quoted: it might hold secrets.
pub fn request_error<RE, T>(what: &str, error: RequestTokenError<RE, T>) -> Error
where
    RE: std::error::Error + 'static,
    T: ErrorResponse + 'static,
{
    match error {
        RequestTokenError::ServerResponse(r) => {
            format!(
                "{what}: the provider answered with an error: {}",
                printable(&r.to_string())
            )
        }
        RequestTokenError::Request(e) => {
            format!(
                "{what}: the provider could not be reached: {}",
                error_chain(&e)
            )
        }
        RequestTokenError::Parse(_, _) => {
            format!("{what}: the provider's answer is not a valid token response")
        }
        RequestTokenError::Other(why) => format!("{what}: {}", printable(&why)),
    }
    .into()
}

/// Text from the provider, made safe for a terminal (no control
/// characters) and short.
pub(crate) fn printable(text: &str) -> String {
    without_controls(text).chars().take(500).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
