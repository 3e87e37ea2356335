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

#![warn(missing_docs)]
// stderr is written with `say` (which cannot panic), stdout only by the SDK.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// Only the flags and the plugin are for the binary; the rest is this
// crate's own business.
mod browser;
mod callback;
pub mod config;
mod device;
mod login;
mod logout;
mod paste;
mod protected_resource;
mod provider;
mod server_metadata;
mod state;
mod token_error;
mod token_http;
mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

use authplug_protocol::plugin::{self, Plugin, Request, Response};
use authplug_protocol::{Reason, Token};
use openidconnect::core::CoreTokenResponse;
use openidconnect::{OAuth2TokenResponse, RefreshToken, Scope, TokenResponse};

use config::{Config, Flow, TokenKind};
use provider::Provider;
use state::{Loaded, PluginState, StoredToken};
use token_error::{ClientInfo, Grant, TokenError};
use token_http::TokenHttp;
use verify::{ExpectNonce, VerifyError};

/// Any error a run reports (the SDK prints it and its causes).
pub type Error = authplug_protocol::plugin::Error;

/// The plugin: a validated configuration.
pub struct OidcPlugin {
    config: Config,
}

impl OidcPlugin {
    /// The plugin for flags that pass [`Config::validate`]; the error says
    /// which flag is wrong.
    pub fn new(config: Config) -> Result<Self, config::FlagError> {
        config.validate()?;
        Ok(OidcPlugin { config })
    }
}

impl Plugin for OidcPlugin {
    fn run(&mut self, request: Request) -> Result<Response, Error> {
        // Messages quote the provider (errors, claims, URLs); whatever got
        // through, no control character reaches the user's terminal.
        let printable = |e: &Error| Error::from(without_controls(&error_chain(&**e)));
        let config = match protected_resource::resolve(&self.config, &request) {
            Ok(config) => config,
            Err(error) => return Err(printable(&error)),
        };
        run(&config, request).map_err(|error| match error.downcast::<plugin::FailedWithState>() {
            Ok(failed) => plugin::fail_keeping_state(printable(&failed.error), failed.state),
            Err(error) => match error.downcast::<plugin::LoginNeeded>() {
                Ok(needed) => plugin::login_needed(printable(&needed.error)),
                Err(error) => printable(&error),
            },
        })
    }
}

/// One run: the cached token if it will do (no network at all), else a
/// refresh, else a login.
fn run(config: &Config, request: Request) -> Result<Response, Error> {
    let now = unix_now();
    if request.reason == Reason::Logout {
        return logout::logout(config, &request, now);
    }
    let state = match PluginState::load(&request.state, &config.issuer, &config.client_id) {
        Loaded::Usable(state) => *state,
        Loaded::Empty => PluginState::new(&config.issuer, &config.client_id),
        Loaded::Ignored(why) => {
            say(&format!("{why}; starting a new session"));
            PluginState::new(&config.issuer, &config.client_id)
        }
    };
    let mut state = state;
    if let Some(url) = &config.resource_url {
        // Kept, so that the next run for this URL needs no network.
        state.protected_resource = Some(url.to_string());
        state.resource_indicator = config.resolved_resource.clone();
        state.resource_scopes = config.resolved_scopes.clone();
    }
    // Every answer says when its token expires (PROTOCOL.md rule 10), so
    // that a host refreshes it in time even when it is opaque.
    let cached = cached_token(config, &state, now);
    if request.may_reuse_token() {
        if let Some(token) = cached {
            return Ok(token.answer(request.state));
        }
    }
    // Asked ahead of expiry (`expiring`) by a host whose token this
    // provider cannot renew without a login: the one held, still valid, is
    // the best there is until it expires (the host then asks for a login).
    if request.reason == Reason::Expiring && refresh_is_pointless(config, &state) {
        if let Some(held) = held_token(config, &state, now, 0) {
            say("this provider gives no new ID token on refresh: the one held stays in use until it expires");
            return Ok(held.answer(request.state));
        }
    }
    // A host that says nothing (epithet) may run us because a server refused
    // the token we hold (PROTOCOL.md rule 1): a fresh one, then, unless the
    // provider cannot give one.
    let fallback = if request.reason_given { None } else { cached };
    if let Some(token) = &fallback {
        if refresh_is_pointless(config, &state) {
            say("the host gave no reason for this run, and this provider gives no new ID token on refresh: handing out the ID token held (still valid); if a server refused it, log in again");
            return Ok(token.clone().answer(request.state));
        }
    }
    let outcome = runtime()?.block_on(run_online(config, state, &request, now));
    match (outcome, fallback) {
        (Err(error), Some(token)) if provider_unavailable(&*error) => {
            say(&format!(
                "{}; handing out the token held (still valid), which a server may have refused",
                error_chain(&*error)
            ));
            Ok(token.answer(request.state))
        }
        (outcome, _) => outcome,
    }
}

/// The runtime for a run that goes online (a run that needs no network
/// starts none).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?)
}

/// The provider gave no answer (or only a temporary error): nothing was
/// refused, nothing changed.
fn provider_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<TokenError>(),
        Some(TokenError::Unreachable { .. } | TokenError::Temporary { .. })
    )
}

fn wanted(config: &Config) -> TokenKind {
    if config.flow == Flow::ClientCredentials {
        TokenKind::Access
    } else {
        config.token
    }
}

/// A refresh cannot give the token asked for: an ID token is wanted and this
/// provider's last refresh brought none (OIDC Core §12.2 allows that). A
/// refresh would only spend the refresh token.
fn refresh_is_pointless(config: &Config, state: &PluginState) -> bool {
    wanted(config) == TokenKind::Id && state.refresh_gives_id_token == Some(false)
}

/// A token the state holds, and when it expires.
#[derive(Clone)]
struct Held {
    token: Token,
    expires_at: Option<SystemTime>,
}

impl Held {
    fn of(stored: &StoredToken) -> Held {
        Held {
            token: Token::from(stored.value.expose_secret().as_str()),
            expires_at: stored.expiry(),
        }
    }

    /// The answer that hands it out with `state`.
    fn answer(self, state: authplug_protocol::State) -> Response {
        Response::new(self.token, state).expires_at(self.expires_at)
    }
}

fn cached_token(config: &Config, state: &PluginState, now: u64) -> Option<Held> {
    held_token(config, state, now, config.skew)
}

/// The token of the kind asked for that the state holds, if it is valid
/// for more than `skew` seconds.
fn held_token(config: &Config, state: &PluginState, now: u64, skew: u64) -> Option<Held> {
    let stored = match wanted(config) {
        TokenKind::Id => state.id_token.as_ref(),
        TokenKind::Access if state.access_token_resource == config.access_token_target() => {
            state.access_token.as_ref()
        }
        TokenKind::Access => None,
    }?;
    stored.valid_beyond(now, skew).then(|| Held::of(stored))
}

async fn run_online(
    config: &Config,
    mut state: PluginState,
    request: &Request,
    now: u64,
) -> Result<Response, Error> {
    let http = provider::http_client(config)?;
    let provider = Provider::load_or_discover(config, state.provider.as_ref(), &http, now).await?;
    if request.held_token_may_be_refused() {
        // The token we would reuse was refused (or may have been: the host
        // did not say): never hand it out again from this run's state.
        match wanted(config) {
            TokenKind::Id => state.id_token = None,
            TokenKind::Access => state.access_token = None,
        }
    }
    let mut session = Session::new(config, http, provider, state, now);
    let outcome = session.get_token(request).await;
    match outcome {
        Ok(response) => Ok(response),
        // Rule 4's exception: this run spent or received something that the
        // old state does not have (a rotated refresh token, fresh tokens).
        // Losing it could lose the login, so the host is asked to keep it.
        Err(error) if session.obtained => match session.state_to_keep() {
            Ok(state) => Err(plugin::fail_keeping_state(error, state)),
            Err(_) => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// The most scopes servers' challenges may add to a profile.
const MAX_ADDED_SCOPES: usize = 16;

/// No second login for more scopes within this long of one.
const STEP_UP_PAUSE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A login is needed and this run may not start one: the host is told so
/// by the exit code it offers (PROTOCOL.md rule 6).
fn login_needed(why: &str) -> Error {
    plugin::login_needed(format!(
        "a login is needed ({why}), but this run may not open a browser or prompt \
         (AUTHPLUG_INTERACTIVE=0): run `authplug token` (or the same command) in a terminal to log in"
    ))
}

impl Session<'_> {
    /// The token, by the cheapest way left: refresh, else a login.
    async fn get_token(&mut self, request: &Request) -> Result<Response, Error> {
        let config = self.config;
        if config.flow == Flow::ClientCredentials {
            self.client_credentials().await?;
            return self.finish();
        }
        let mut why_login = "no valid token or refresh token in the state".to_owned();
        let challenged = self.take_challenge(request)?;
        if let Some(scopes) = self.scopes_missing_from_grant() {
            // A refresh cannot widen a grant (RFC 6749 §6): a new login it
            // is, when this run may start one. A quiet run that no server
            // challenged refreshes the grant it has (the scopes added
            // earlier wait for an interactive run).
            let why = format!(
                "{} the scope{} {}, which this login was not granted",
                if challenged {
                    "the server asks for"
                } else {
                    "this profile's logins now ask for"
                },
                if scopes.len() == 1 { "" } else { "s" },
                scopes.join(" ")
            );
            if request.interactive {
                say(&format!("{why}; a new login asks for it"));
                self.state.step_up_at = Some(self.now);
                self.login().await?;
                self.id_token_by_refresh().await?;
                return self.finish();
            }
            if challenged || self.state.refresh_token.is_none() {
                return Err(login_needed(&why));
            }
        }
        if self.state.refresh_token.is_some() {
            if refresh_is_pointless(self.config, &self.state) {
                // It would spend the refresh token and bring no ID token, as
                // this provider's refreshes have before.
                why_login =
                    "this provider gives no new ID token on refresh, so a new one takes a login"
                        .to_owned();
                if request.interactive {
                    say(&format!("{why_login}; a new login is needed"));
                }
            } else {
                match self.refresh().await {
                    Ok(true) => return self.finish(),
                    Ok(false) => {
                        why_login = "the refresh gave no new ID token and the old one has expired"
                            .to_owned();
                        if request.interactive {
                            say(&format!("{why_login}; a new login is needed"));
                        }
                    }
                    Err(RefreshFailure::Refused(why)) => {
                        why_login = why.to_string();
                        if request.interactive {
                            say(&format!("{why}; a new login is needed"));
                        }
                        self.state.refresh_token = None;
                    }
                    Err(RefreshFailure::Other(e)) => return Err(e),
                }
            }
        }
        if !request.interactive {
            return Err(login_needed(&why_login));
        }
        self.login().await?;
        self.id_token_by_refresh().await?;
        self.finish()
    }

    /// Takes the scopes a refusing server's challenge asks for
    /// (`AUTHPLUG_CHALLENGE`, RFC 6750 §3.1) into the state, for every later
    /// login (kept even if this run fails). Bounded: at most
    /// [`MAX_ADDED_SCOPES`] in all, and no second step-up within
    /// [`STEP_UP_PAUSE`] of one (a server naming a new scope at each
    /// request must not open a browser at each). `true` if it asked for
    /// any this profile does not ask for yet.
    fn take_challenge(&mut self, request: &Request) -> Result<bool, Error> {
        let Some(challenge) = request.challenge.as_deref() else {
            return Ok(false);
        };
        let asked = self.login_scopes();
        let new: Vec<String> = authplug_protocol::challenge::insufficient_scopes(challenge)
            .into_iter()
            .filter(|scope| scope != "openid" && !asked.contains(scope))
            .collect();
        if new.is_empty() {
            return Ok(false);
        }
        let recent = self
            .state
            .step_up_at
            .is_some_and(|at| self.now < at.saturating_add(STEP_UP_PAUSE.as_secs()));
        if recent {
            return Err(format!(
                "the server asks for yet more scopes ({}) less than {} minutes after the last login for more: not logging in again now; if it is right, log in by hand (`authplug token`) once it has passed",
                new.join(" "),
                STEP_UP_PAUSE.as_secs() / 60
            )
            .into());
        }
        if self.state.added_scopes.len() + new.len() > MAX_ADDED_SCOPES {
            return Err(format!(
                "the server asks for scopes ({}) beyond the {MAX_ADDED_SCOPES} a server may add to this profile: add them with --scopes if they are wanted",
                new.join(" ")
            )
            .into());
        }
        self.state.added_scopes.extend(new);
        self.obtained = true;
        Ok(true)
    }

    /// The scopes this profile's logins ask for that the login behind the
    /// refresh token did not; `None` when there are none.
    fn scopes_missing_from_grant(&self) -> Option<Vec<String>> {
        let grant: Vec<String> = if self.state.grant_scopes.is_empty() {
            // A state from before grants were recorded: `--scopes`, as a
            // login asks for them (trimmed).
            (self.config.login_scopes().iter())
                .map(|s| s.trim().to_owned())
                .collect()
        } else {
            self.state.grant_scopes.clone()
        };
        let missing: Vec<String> = self
            .login_scopes()
            .into_iter()
            .filter(|scope| scope != "offline_access" && !grant.contains(scope))
            .collect();
        (!missing.is_empty()).then_some(missing)
    }

    /// A login may bring no ID token: a device login need not (RFC 8628
    /// §3.5). When one is wanted, a refresh may bring it; else the error
    /// says what the provider did. Either way what the login obtained
    /// stays in the state (`obtained`): the host keeps it (rule 4), and the
    /// next run uses or revokes it.
    async fn id_token_by_refresh(&mut self) -> Result<(), Error> {
        if wanted(self.config) != TokenKind::Id || self.state.id_token.is_some() {
            return Ok(());
        }
        if self.state.refresh_token.is_some() {
            say("the login gave no ID token; trying a refresh for one");
            match self.refresh().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(RefreshFailure::Refused(error)) => return Err(error.into()),
                Err(RefreshFailure::Other(error)) => return Err(error),
            }
        }
        // Only a device login gets here: a browser login's token response
        // must carry an ID token (OIDC Core §3.1.3.3), which `absorb` checks.
        Err(format!(
            "the provider's device login gave an access token but no ID token (RFC 8628 allows that), and {}: use --token access for the access token (the tokens it gave are kept for the next run)",
            if self.state.refresh_token.is_some() {
                "a refresh gave none either"
            } else {
                "no refresh token to get one with"
            }
        )
        .into())
    }

    async fn login(&mut self) -> Result<(), Error> {
        let config = self.config;
        // A login starts a new session: the old one's ID token and user are
        // not this one's (a device login may bring no ID token, and the
        // next user may be another).
        self.state.id_token = None;
        self.state.subject = None;
        let asked = self.login_scopes();
        let session = &mut *self;
        match config.flow {
            Flow::Device => device::device_login(session).await?,
            Flow::Browser => login::browser_login(session, !config.no_browser).await?,
            // The user asked for the login URL, to open it themselves,
            // maybe on another machine.
            Flow::Paste => login::browser_login(session, false).await?,
            Flow::Auto if config.no_browser => login::browser_login(session, false).await?,
            Flow::Auto if browser::can_open(config.browser_command.as_deref()) => {
                login::browser_login(session, true).await?
            }
            Flow::Auto if session.provider.device_endpoint().is_some() => {
                say("no browser can be opened here, so using the device flow");
                device::device_login(session).await?
            }
            // No browser here and no device flow: a browser elsewhere, its
            // final address pasted back.
            Flow::Auto => login::browser_login(session, false).await?,
            Flow::ClientCredentials => unreachable!("handled above"),
        }
        // What this grant was asked for: a refresh cannot widen it.
        self.state.grant_scopes = asked;
        Ok(())
    }
}

enum RefreshFailure {
    /// The provider refused the refresh token (`invalid_grant`, or a bare
    /// 400/401/403): log in again.
    Refused(TokenError),
    Other(Error),
}

/// Everything a run that talks to the provider needs.
pub(crate) struct Session<'a> {
    pub config: &'a Config,
    pub http: reqwest::Client,
    pub provider: Provider,
    pub state: PluginState,
    pub now: u64,
    /// The state now holds what the provider gave this run (a refresh
    /// token it may have rotated, fresh tokens): if the run fails anyway,
    /// the host is asked to keep it.
    pub obtained: bool,
}

impl<'a> Session<'a> {
    /// A session that has obtained nothing yet.
    pub fn new(
        config: &'a Config,
        http: reqwest::Client,
        provider: Provider,
        state: PluginState,
        now: u64,
    ) -> Session<'a> {
        Session {
            config,
            http,
            provider,
            state,
            now,
            obtained: false,
        }
    }
}

impl Session<'_> {
    /// The scopes for a login besides `openid` (which each flow adds):
    /// as configured, plus `offline_access` when the provider lists it (for
    /// a refresh token).
    pub fn login_scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        let added = self.state.added_scopes.iter().cloned();
        for scope in &self
            .config
            .login_scopes()
            .into_iter()
            .chain(added)
            .collect::<Vec<_>>()
        {
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
        // `expires_in` (RFC 6749 §5.1), else the access token's own `exp`
        // if it is a JWT (read as the host reads it), else unknown.
        let access_token = response.access_token().secret();
        let expires_at = match response.expires_in() {
            Some(lifetime) => Some(self.now.saturating_add(lifetime.as_secs())),
            None => authplug_protocol::jwt_expiry(access_token.as_bytes())
                .map(authplug_protocol::expiry::unix_seconds),
        };
        self.state.access_token = Some(StoredToken::new(access_token.clone(), expires_at));
        self.state.access_token_resource = self.config.access_token_target();
        if let Some(refresh) = response.refresh_token() {
            // Rotation: the new one replaces the old, which is now spent.
            self.state.refresh_token =
                Some(authplug_protocol::Secret::new(refresh.secret().clone()));
        }
        self.obtained = true;
        Ok(())
    }

    /// [`Session::absorb`] for a login's answer (browser, device, client
    /// credentials). A refresh token in an answer that fails a check is
    /// not used; it is revoked rather than left live with nobody holding
    /// it. (A refresh answer's rotated token is kept instead: it replaces
    /// the one the state held, see `refresh`.)
    pub async fn absorb_login(
        &mut self,
        response: &CoreTokenResponse,
        nonce: ExpectNonce<'_>,
        id_token_required: bool,
    ) -> Result<(), Error> {
        let absorbed = self.absorb(response, nonce, None, id_token_required).await;
        if absorbed.is_err() {
            if let Some(refresh_token) = response.refresh_token() {
                self.revoke_unused(refresh_token).await;
            }
        }
        absorbed
    }

    /// A login's failed token request ([`Session::refusal`]). An answer
    /// that carried a refresh token all the same (a 200 whose ID token
    /// could not even be parsed) started a grant at the provider: that
    /// token is revoked, not left live.
    pub async fn login_refusal<T: openidconnect::ErrorResponse + 'static>(
        &self,
        grant: Grant,
        error: openidconnect::RequestTokenError<openidconnect::HttpClientError<reqwest::Error>, T>,
        http: &TokenHttp<'_>,
    ) -> TokenError {
        if let Some(refresh_token) = http.take_refresh_token() {
            self.revoke_unused(&refresh_token).await;
        }
        self.refusal(grant, error, http)
    }

    /// What a failed request to the token or device endpoint means
    /// ([`token_error::classify`], with the answer `http` saw).
    pub fn refusal<T: openidconnect::ErrorResponse + 'static>(
        &self,
        grant: Grant,
        error: openidconnect::RequestTokenError<openidconnect::HttpClientError<reqwest::Error>, T>,
        http: &TokenHttp<'_>,
    ) -> TokenError {
        token_error::classify(grant, &self.client_info(), error, http.last_answer())
    }

    /// The client, for messages about what the provider refused.
    pub fn client_info(&self) -> ClientInfo<'_> {
        ClientInfo {
            client_id: &self.config.client_id,
            has_secret: self.config.client_secret.is_some(),
            scopes: self.config.requested_scopes(),
        }
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
        for (name, value) in self.config.token_params() {
            request = request.add_extra_param(name, value);
        }
        let http = TokenHttp::new(&self.http);
        let response = match request.request_async(&http).await {
            Ok(response) => response,
            Err(e) => {
                // An answer with a rotated refresh token that could not be
                // read otherwise: the old one is spent, so the new one is
                // kept (and handed back, rule 4) whatever else failed.
                if let Some(rotated) = http.take_refresh_token() {
                    self.state.refresh_token =
                        Some(authplug_protocol::Secret::new(rotated.secret().clone()));
                    self.obtained = true;
                }
                let error = self.refusal(Grant::Refresh, e, &http);
                return Err(if error.is_refused_refresh() {
                    RefreshFailure::Refused(error)
                } else {
                    RefreshFailure::Other(error.into())
                });
            }
        };
        // Remembered, so that a later run that needs an ID token does not
        // spend the refresh token for nothing (`refresh_is_pointless`).
        self.state.refresh_gives_id_token = Some(response.id_token().is_some());
        // A rotated refresh token is kept before anything else is checked:
        // the old one is spent now, whatever follows. Nothing else from a
        // response that fails a check is kept (`absorb` stores the tokens
        // only once the ID token is verified), and no token is printed.
        if let Some(rotated) = response.refresh_token() {
            self.state.refresh_token =
                Some(authplug_protocol::Secret::new(rotated.secret().clone()));
            self.obtained = true;
        }
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
        let login_nonce = self.state.login_nonce.clone();
        self.absorb(
            &response,
            ExpectNonce::Refresh(login_nonce.as_deref()),
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
        // Exactly the scopes the user gave (a machine has no use for the
        // default `openid profile email`), and none if they gave none.
        for scope in self.config.given_scopes() {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        for (name, value) in self.config.token_params() {
            request = request.add_extra_param(name, value);
        }
        let http = TokenHttp::new(&self.http);
        let response = match request.request_async(&http).await {
            Ok(response) => response,
            Err(e) => {
                return Err(self
                    .login_refusal(Grant::ClientCredentials, e, &http)
                    .await
                    .into())
            }
        };
        self.absorb_login(&response, ExpectNonce::Refresh(None), false)
            .await
    }

    /// The token to print and the state to keep.
    fn finish(&self) -> Result<Response, Error> {
        let token = match wanted(self.config) {
            TokenKind::Id => self.state.id_token.as_ref(),
            TokenKind::Access => self.state.access_token.as_ref(),
        }
        .ok_or("the provider returned no token of the kind asked for (--token)")?;
        Ok(Held::of(token).answer(self.state_to_keep()?))
    }

    /// The state as it is now, with the provider's cache.
    fn state_to_keep(&self) -> Result<authplug_protocol::State, Error> {
        let mut state = self.state.clone();
        state.provider = Some(self.provider.to_cache()?);
        Ok(state.to_state()?)
    }
}

/// Says something to the user, on stderr (never a token or secret), with
/// no control characters (messages quote the provider).
pub(crate) fn say(message: &str) {
    say_raw(&format!("authplug-oidc: {}", without_controls(message)));
}

/// A line on stderr as it is (a QR code, say). Never panics: a host that
/// closed our stderr is no reason to lose the run (`eprintln!` would).
pub(crate) fn say_raw(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An error and its causes on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
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
