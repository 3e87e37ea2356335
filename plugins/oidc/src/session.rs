//! One online run (`Session`): what it holds, and how it gets the token
//! by the cheapest way left (refresh, else a login, or client credentials).

use authplug_protocol::plugin::{self, Request, Response};

use crate::config::{Config, Flow, TokenKind};
use crate::held::{refresh_is_pointless, wanted};
use crate::messages::say;
use crate::provider::Provider;
use crate::state::PluginState;
use crate::token_error::TokenError;
use crate::{browser, device, login, provider, Error};

pub(crate) async fn run_online(
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
pub(crate) const MAX_ADDED_SCOPES: usize = 16;

/// No second login for more scopes within this long of one.
pub(crate) const STEP_UP_PAUSE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A login is needed and this run may not start one: the host is told so
/// by the exit code it offers (PROTOCOL.md rule 6).
pub(crate) fn login_needed(why: &str) -> Error {
    plugin::login_needed(format!(
        "a login is needed ({why}), but this run may not open a browser or prompt \
         (AUTHPLUG_INTERACTIVE=0): run `authplug token` (or the same command) in a terminal to log in"
    ))
}

impl Session<'_> {
    /// The token, by the cheapest way left: refresh, else a login.
    pub(crate) async fn get_token(&mut self, request: &Request) -> Result<Response, Error> {
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
    pub(crate) fn take_challenge(&mut self, request: &Request) -> Result<bool, Error> {
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
    pub(crate) fn scopes_missing_from_grant(&self) -> Option<Vec<String>> {
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
    pub(crate) async fn id_token_by_refresh(&mut self) -> Result<(), Error> {
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

    pub(crate) async fn login(&mut self) -> Result<(), Error> {
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

pub(crate) enum RefreshFailure {
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
    pub(crate) fn new(
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
