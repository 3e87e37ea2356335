//! authplug-oidc's first login through a real browser: headless Debian
//! chromium driven by playwright-core (scripts/dev-idp/login-chromium.mjs)
//! against the real dev IdP (npm oidc-provider). Then the cached token is
//! handed out again with the IdP gone.

mod oidc_support;

use oidc_support::{
    dev_args, fetch_jwks, state_json, token_text, verify_jwt, DevIdp, ForbiddenBrowser,
    LoggedDriver, Run,
};

/// The query parameters of the login URL the plugin printed on stderr.
fn login_url_params(stderr: &str) -> std::collections::HashMap<String, String> {
    let url = stderr
        .lines()
        .find_map(|l| l.split("if your browser did not open, visit ").nth(1))
        .unwrap_or_else(|| panic!("no login URL on stderr: {stderr}"));
    url::Url::parse(url.trim())
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_in_chromium_then_the_cached_token_with_the_idp_stopped() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let chromium = LoggedDriver::chromium(&[]);
    let first = Run::new(&dev_args(&idp.issuer, &chromium.command))
        .go()
        .await
        .expect("a login in chromium");
    assert_eq!(chromium.logins(), 1, "{}", chromium.log());

    let id_token = token_text(&first);
    let jwks = fetch_jwks(&idp.issuer).await;
    let (_, claims) =
        verify_jwt(&id_token, &jwks, &idp.issuer, "demo").expect("the ID token verifies");
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["aud"], "demo");
    assert_eq!(claims["sub"], "alice");
    let sent = login_url_params(&first.stderr_tail);
    assert_eq!(sent["code_challenge_method"], "S256");
    assert!(sent["state"].len() >= 16, "a random state");
    assert_eq!(
        claims["nonce"].as_str(),
        Some(sent["nonce"].as_str()),
        "the nonce of this login"
    );
    assert!(!first.stderr_tail.contains(&id_token));

    let state = state_json(&first.state);
    assert_eq!(state["issuer"], idp.issuer.as_str());
    assert_eq!(state["client_id"], "demo");
    assert_eq!(state["subject"], "alice");
    assert!(state["refresh_token"].is_string());
    assert_eq!(state["id_token"]["value"], id_token.as_str());

    // The IdP is gone: the valid token comes from the state alone.
    drop(idp);
    let forbidden = ForbiddenBrowser::new();
    let issuer = state["issuer"].as_str().unwrap();
    let second = Run::new(&dev_args(issuer, &forbidden.command))
        .state(&first.state)
        .interactive(false)
        .go()
        .await
        .expect("the cached token, offline");
    assert_eq!(second.token, first.token);
    assert_eq!(second.state, first.state, "the state handed back as it was");
    forbidden.assert_unused();
}
