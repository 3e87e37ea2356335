//! Browser login: authorization code with PKCE S256, a random `state` and
//! `nonce`, and a loopback redirect; where no browser is opened here, the
//! address the browser ends on may be pasted instead (paste.rs).

use std::sync::Arc;

use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge, RedirectUrl, Scope};

use crate::callback::{CallbackListener, Expected};
use crate::config::Config;
use crate::messages::{say, say_raw};
use crate::session::Session;
use crate::token_error::Grant;
use crate::token_http::TokenHttp;
use crate::verify::ExpectNonce;
use crate::{browser, paste, Error};

pub async fn browser_login(session: &mut Session<'_>, open_browser: bool) -> Result<(), Error> {
    let config: &Config = session.config;
    let listener = CallbackListener::bind(config.listen).await.map_err(|e| {
        format!(
            "cannot listen on {} for the login redirect: {e}",
            config.listen
        )
    })?;
    let redirect_uri = listener.redirect_uri(&config.redirect_path);
    let client = session.provider.client(config).set_redirect_uri(
        RedirectUrl::new(redirect_uri.clone())
            .map_err(|e| format!("bad redirect URI {redirect_uri}: {e}"))?,
    );
    // openidconnect adds `openid` itself.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut authorize = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in session.login_scopes() {
        authorize = authorize.add_scope(Scope::new(scope));
    }
    for (name, value) in config.login_params() {
        authorize = authorize.add_extra_param(name, value);
    }
    let (url, csrf, nonce) = authorize.url();

    let expected = Arc::new(Expected {
        path: config.redirect_path.clone(),
        state: csrf.secret().clone(),
        issuer: config.issuer.clone(),
        iss_required: session.provider.requires_callback_iss(),
    });
    // Kept until the login ends: dropping it stops reading the terminal.
    let mut pasting = None;
    if open_browser {
        if let Err(why) = browser::open(url.as_str(), config.browser_command.as_deref()) {
            say(&why.to_string());
        }
        say(&format!("if your browser did not open, visit {url}"));
    } else {
        say("to log in, open this address in a browser, on this machine or any other:");
        say_raw(&format!("  {url}"));
        say(&format!(
            "after the login the browser is sent to {redirect_uri}?…; where it cannot load that \
             (it runs on another machine), copy the address from its address bar, paste it here \
             and press Enter (or run `curl '<the address>'` on this machine)"
        ));
        pasting = paste::ask(Arc::clone(&expected));
    }

    let wait = async {
        match pasting.as_mut() {
            Some((_reader, pasted)) => tokio::select! {
                code = listener.wait(Arc::clone(&expected)) => code,
                code = pasted.next() => code,
            },
            None => listener.wait(Arc::clone(&expected)).await,
        }
    };
    let code = match tokio::time::timeout(config.login_timeout(), wait).await {
        Ok(outcome) => outcome?,
        Err(_) => {
            return Err(format!(
            "the login was not completed within {} seconds (--login-timeout); run again to retry",
            config.login_timeout
        )
            .into())
        }
    };
    drop(pasting);

    let mut exchange = client
        .exchange_code(code.0)
        .map_err(|e| format!("the provider has no token endpoint: {e}"))?
        .set_pkce_verifier(verifier);
    for (name, value) in config.token_params() {
        exchange = exchange.add_extra_param(name, value);
    }
    let http = TokenHttp::new(&session.http);
    let response = match exchange.request_async(&http).await {
        Ok(response) => response,
        Err(e) => return Err(session.login_refusal(Grant::Code, e, &http).await.into()),
    };
    session
        .absorb_login(&response, ExpectNonce::Login(&nonce), true)
        .await?;
    // OIDC Core §12.2: a refreshed ID token that has a nonce must carry
    // this one.
    session.state.login_nonce = Some(nonce.secret().clone());
    Ok(())
}
