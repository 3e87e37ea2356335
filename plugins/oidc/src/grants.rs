//! What the token endpoint's answers do to a session: a login's or a
//! refresh's answer absorbed (and a refresh token never orphaned), client
//! credentials, and the response and state a run ends with.

use authplug_protocol::plugin::Response;
use openidconnect::core::CoreTokenResponse;
use openidconnect::{OAuth2TokenResponse, RefreshToken, Scope, TokenResponse};

use crate::config::{Flow, TokenKind};
use crate::held::{wanted, Held};
use crate::session::{RefreshFailure, Session};
use crate::state::StoredToken;
use crate::token_error::{ClientInfo, Grant, TokenError};
use crate::token_http::TokenHttp;
use crate::verify::{ExpectNonce, VerifyError};
use crate::{token_error, verify, Error};

impl Session<'_> {
    /// The scopes for a login besides `openid` (which each flow adds):
    /// as configured, plus `offline_access` when the provider lists it (for
    /// a refresh token).
    pub(crate) fn login_scopes(&self) -> Vec<String> {
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
    pub(crate) async fn absorb(
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
    pub(crate) async fn absorb_login(
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
    pub(crate) async fn login_refusal<T: openidconnect::ErrorResponse + 'static>(
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
    pub(crate) fn refusal<T: openidconnect::ErrorResponse + 'static>(
        &self,
        grant: Grant,
        error: openidconnect::RequestTokenError<openidconnect::HttpClientError<reqwest::Error>, T>,
        http: &TokenHttp<'_>,
    ) -> TokenError {
        token_error::classify(grant, &self.client_info(), error, http.last_answer())
    }

    /// The client, for messages about what the provider refused.
    pub(crate) fn client_info(&self) -> ClientInfo<'_> {
        ClientInfo {
            client_id: &self.config.client_id,
            has_secret: self.config.client_secret.is_some(),
            scopes: self.config.requested_scopes(),
        }
    }

    /// The refresh grant. `Ok(false)`: it worked, but no usable ID token.
    pub(crate) async fn refresh(&mut self) -> Result<bool, RefreshFailure> {
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

    pub(crate) async fn client_credentials(&mut self) -> Result<(), Error> {
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
    pub(crate) fn finish(&self) -> Result<Response, Error> {
        let token = match wanted(self.config) {
            TokenKind::Id => self.state.id_token.as_ref(),
            TokenKind::Access => self.state.access_token.as_ref(),
        }
        .ok_or("the provider returned no token of the kind asked for (--token)")?;
        Ok(Held::of(token).answer(self.state_to_keep()?))
    }

    /// The state as it is now, with the provider's cache.
    pub(crate) fn state_to_keep(&self) -> Result<authplug_protocol::State, Error> {
        let mut state = self.state.clone();
        state.provider = Some(self.provider.to_cache()?);
        Ok(state.to_state()?)
    }
}
