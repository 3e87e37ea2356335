//! authplug-oidc's refresh, device, client-credentials and resource flows
//! against the real dev IdP (scripts/dev-idp/idp.mjs, npm oidc-provider
//! 9.13.3), each test with its own IdP; logins go through its login form
//! with the HTTP driver (login-http.mjs) as the browser command.

mod oidc_support;

use authplug_protocol::Reason;
use oidc_support::{
    admin, approvers_succeeded, client_credentials, dev_args, device_approve_command, device_run,
    fetch_jwks, jwt_claims, quiet_refused_refresh, relogin_after_refused_refresh, state_json,
    token_text, verify_jwt, DevIdp, ForbiddenBrowser, LoggedDriver, Run,
};

fn start(config: &str) -> DevIdp {
    DevIdp::start(config).expect("the dev IdP starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_expiry_is_refreshed_without_a_browser() {
    // ID and access tokens live 30 s, inside the default 60 s skew: the
    // next run must refresh rather than hand the token out again.
    let idp = start(r#"{"ttl":{"idToken":30,"accessToken":30}}"#);
    let driver = LoggedDriver::http(&[]);
    let first = Run::new(&dev_args(&idp.issuer, &driver.command))
        .go()
        .await
        .expect("first login");
    let forbidden = ForbiddenBrowser::new();
    let second = Run::new(&dev_args(&idp.issuer, &forbidden.command))
        .state(&first.state)
        .go()
        .await
        .expect("a silent refresh");
    forbidden.assert_unused();
    assert_eq!(driver.logins(), 1, "one login only: {}", driver.log());
    let (before, after) = (state_json(&first.state), state_json(&second.state));
    assert!(after["refresh_token"].is_string());
    assert_ne!(after["refresh_token"], before["refresh_token"], "rotated");
    assert_ne!(
        after["access_token"]["value"], before["access_token"]["value"],
        "the refresh grant ran"
    );
    let jwks = fetch_jwks(&idp.issuer).await;
    let (_, claims) = verify_jwt(&token_text(&second), &jwks, &idp.issuer, "demo")
        .expect("the refreshed ID token verifies");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(after["subject"], "alice");

    // With a skew shorter than the lifetime, the same state's token is
    // good as it is: no refresh (the refresh token stays the same).
    let third = Run::new(&dev_args(&idp.issuer, &forbidden.command))
        .args(&["--skew", "5"])
        .state(&second.state)
        .go()
        .await
        .expect("the cached token");
    assert_eq!(third.token, second.token);
    assert_eq!(third.state, second.state);
}

/// The token needs refreshing (30 s lifetimes, inside the 60 s skew) and
/// the IdP is gone: a clear network error, and no browser, since a login
/// could not reach it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_cannot_reach_the_idp_fails_without_opening_a_browser() {
    let idp = start(r#"{"ttl":{"idToken":30,"accessToken":30}}"#);
    let driver = LoggedDriver::http(&[]);
    let first = Run::new(&dev_args(&idp.issuer, &driver.command))
        .go()
        .await
        .expect("first login");
    let issuer = idp.issuer.clone();
    drop(idp);
    let forbidden = ForbiddenBrowser::new();
    let refusal = Run::new(&dev_args(&issuer, &forbidden.command))
        .state(&first.state)
        .go_refused()
        .await;
    let message =
        refusal.assert_clean("refreshing the token: cannot reach the provider at 127.0.0.1:");
    assert!(message.contains("Connection refused"), "{message}");
    forbidden.assert_unused();
    assert_eq!(driver.logins(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_leads_to_a_new_login() {
    let idp = start(r#"{"rotateRefreshToken":true}"#);
    let driver = LoggedDriver::http(&[]);
    let args = dev_args(&idp.issuer, &driver.command);
    let first = Run::new(&args).go().await.expect("first login");
    // `rejected` forces a refresh though the token is valid; the first
    // refresh token is now spent.
    let second = Run::new(&args)
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a refresh");
    assert_eq!(driver.logins(), 1);
    assert_ne!(
        state_json(&second.state)["refresh_token"],
        state_json(&first.state)["refresh_token"]
    );

    // Without a login allowed: a clear error, no browser, nothing written.
    let refusal = quiet_refused_refresh(&idp.issuer, &first.state).await;
    let message = refusal.assert_clean("AUTHPLUG_INTERACTIVE=0");
    assert!(
        message.contains("the provider refused the refresh token (HTTP 400: invalid_grant"),
        "{message}"
    );
    assert!(message.contains("invalid_grant"), "{message}");

    // Interactive: the spent token is refused and a new login follows.
    let third = relogin_after_refused_refresh(&args, &first.state, &driver).await;
    assert!(state_json(&third.state)["refresh_token"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_leads_to_a_new_login() {
    let idp = start("{}");
    let driver = LoggedDriver::http(&[]);
    let args = dev_args(&idp.issuer, &driver.command);
    let first = Run::new(&args).go().await.expect("first login");
    let revoked = admin(&idp, "revoke-account", "account=alice").await;
    assert!(revoked["revoked_grants"].as_u64() >= Some(1), "{revoked}");

    let refusal = quiet_refused_refresh(&idp.issuer, &first.state).await;
    let message = refusal.assert_clean("AUTHPLUG_INTERACTIVE=0");
    assert!(message.contains("invalid_grant"), "{message}");

    let second = Run::new(&args)
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a new login");
    assert_eq!(driver.logins(), 2, "{}", driver.log());
    assert_eq!(jwt_claims(&token_text(&second))["sub"], "alice");
    assert_ne!(
        state_json(&second.state)["refresh_token"],
        state_json(&first.state)["refresh_token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_approved() {
    let idp = start(r#"{"deviceInterval":1}"#);
    let forbidden = ForbiddenBrowser::new();
    let (run, approvers) = device_run(&idp, &forbidden.command, Some(device_approve_command(&[])));
    let output = run.go().await.expect("a device login");
    assert_eq!(approvers_succeeded(&approvers), 1);
    assert!(
        output.stderr_tail.contains("and enter the code"),
        "{}",
        output.stderr_tail
    );
    let jwks = fetch_jwks(&idp.issuer).await;
    let (_, claims) =
        verify_jwt(&token_text(&output), &jwks, &idp.issuer, "demo").expect("a valid ID token");
    assert_eq!(claims["sub"], "alice");
    assert!(state_json(&output.state)["refresh_token"].is_string());
    forbidden.assert_unused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_denied() {
    let idp = start("{}");
    let (run, approvers) = device_run(
        &idp,
        "true",
        Some(device_approve_command(&[("DEV_IDP_DENY", "1")])),
    );
    let refusal = run.go_refused().await;
    assert_eq!(approvers_succeeded(&approvers), 1, "the denier ran");
    let message = refusal.assert_clean("the login was denied");
    assert!(message.contains("access_denied"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_expires_when_nobody_approves() {
    let idp = start(r#"{"ttl":{"deviceCode":2}}"#);
    let (run, _) = device_run(&idp, "true", None);
    let refusal = run.go_refused().await;
    let message = refusal.assert_clean("expired_token");
    assert!(
        message.contains("not completed within 2 seconds"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_the_right_and_a_wrong_secret() {
    let idp = start("{}");
    let api = "https://api.example/machines";
    let resource = ["--resource", api];
    let issuer = idp.issuer.clone();
    let output = client_credentials(&idp.issuer, "machine-secret")
        .args(&resource)
        .go()
        .await
        .expect("client credentials");
    let jwks = fetch_jwks(&idp.issuer).await;
    let (_, claims) = verify_jwt(&token_text(&output), &jwks, &idp.issuer, api)
        .expect("a JWT access token for the API");
    assert_eq!(claims["client_id"], "machine");
    assert!(!output.stderr_tail.contains("machine-secret"));
    let refusal = client_credentials(&idp.issuer, "wrong-secret")
        .args(&resource)
        .go_refused()
        .await;
    let message =
        refusal.assert_clean("the provider refused client `machine` (HTTP 401: invalid_client");
    assert!(message.contains("check the client secret"), "{message}");
    assert!(!message.contains("wrong-secret"), "{message}");
    // The cached access token is reused while valid, with the IdP gone.
    drop(idp);
    let again = client_credentials(&issuer, "machine-secret")
        .args(&resource)
        .state(&output.state)
        .go()
        .await
        .expect("the cached token");
    assert_eq!(again.token, output.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_for_a_resource_is_a_jwt_for_it() {
    let idp = start("{}");
    let api = "https://api.example/v1";
    let driver = LoggedDriver::http(&[]);
    let mut args = dev_args(&idp.issuer, &driver.command);
    args.extend(["--token", "access", "--resource", api].map(String::from));
    let first = Run::new(&args).go().await.expect("login");
    let jwks = fetch_jwks(&idp.issuer).await;
    let (header, claims) = verify_jwt(&token_text(&first), &jwks, &idp.issuer, api)
        .expect("a JWT access token verified against the JWKS");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["aud"], api);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "demo");
    assert!(
        verify_jwt(
            &token_text(&first),
            &jwks,
            &idp.issuer,
            "https://other.example"
        )
        .is_err(),
        "the audience check is real"
    );
    assert_eq!(state_json(&first.state)["access_token_resource"], api);

    // A refresh asks for the same resource again.
    let forbidden = ForbiddenBrowser::new();
    let mut args = dev_args(&idp.issuer, &forbidden.command);
    args.extend(["--token", "access", "--resource", api].map(String::from));
    let refreshed = Run::new(&args)
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a refresh");
    assert_ne!(refreshed.token, first.token);
    let (_, claims) = verify_jwt(&token_text(&refreshed), &jwks, &idp.issuer, api)
        .expect("the refreshed access token is for the API too");
    assert_eq!(claims["sub"], "alice");
    forbidden.assert_unused();
}

/// An epithet-style host (state on stdin, a pipe on fd 3, no `AUTHPLUG_*`
/// variables) re-runs the plugin with state after a 401 as after a
/// certificate renewal, and cannot say which: it gets a fresh token, never
/// the one a server may have refused; only with the provider gone does it
/// get the one held, with a word on stderr. A host that says `refresh`
/// still gets the valid token as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epithet_host_gets_a_fresh_token_and_the_held_one_only_offline() {
    let idp = start("{}");
    let driver = LoggedDriver::http(&[]);
    let args = dev_args(&idp.issuer, &driver.command);
    let first = Run::new(&args)
        .epithet_host()
        .go()
        .await
        .expect("a first login, as an epithet host runs it");
    let forbidden = ForbiddenBrowser::new();
    let quiet = dev_args(&idp.issuer, &forbidden.command);
    // ID tokens issued in the same second can be byte for byte the same.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let second = Run::new(&quiet)
        .state(&first.state)
        .epithet_host()
        .go()
        .await
        .expect("a refresh");
    let (before, after) = (state_json(&first.state), state_json(&second.state));
    assert_ne!(
        after["refresh_token"], before["refresh_token"],
        "it refreshed"
    );
    assert_ne!(second.token, first.token, "never the token it held");

    // A host that says why gets the valid token as it is.
    let third = Run::new(&quiet)
        .state(&second.state)
        .reason(Reason::Refresh)
        .go()
        .await
        .expect("the held token");
    assert_eq!(third.token, second.token);

    // The provider gone: the held token, said so, rather than nothing.
    drop(idp);
    let offline = Run::new(&quiet)
        .state(&second.state)
        .epithet_host()
        .go()
        .await
        .expect("the held token while the provider is unreachable");
    assert_eq!(offline.token, second.token);
    assert!(
        offline.stderr_tail.contains("cannot reach the provider")
            && offline.stderr_tail.contains("handing out the token held"),
        "{}",
        offline.stderr_tail
    );
    forbidden.assert_unused();
    assert_eq!(driver.logins(), 1);
}
