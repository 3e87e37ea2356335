//! authplug-oidc's `logout` run (PROTOCOL.md rule 1): it revokes the
//! refresh token at a provider that has a revocation endpoint (RFC 7009;
//! the real dev IdP), says so when the provider has none (the stub), never
//! opens a browser, and writes nothing on stdout or fd 3.

mod oidc_support;

use authplug_protocol::host::{RunError, RunOutput};
use authplug_protocol::{Reason, State};
use oidc_support::stub::{Case, Stub};
use oidc_support::{
    client_credentials, dev_args, quiet_refused_refresh, state_json, stub_args, DevIdp,
    ForbiddenBrowser, LoggedDriver, Run, CURL_BROWSER,
};

/// A logout run with `state`, interactive as a careless host might ask:
/// its stderr, after checking that it exited 0 with nothing on stdout or
/// fd 3 and opened no browser.
async fn logout(args: impl Fn(&str) -> Vec<String>, state: &State) -> String {
    let browser = ForbiddenBrowser::new();
    let done = Run::new(&args(&browser.command))
        .state(state)
        .reason(Reason::Logout)
        .interactive(true)
        .go()
        .await;
    browser.assert_unused();
    worked(done)
}

/// A logout run that worked (exit 0, rule 1) and wrote nothing: its stderr.
fn worked(done: Result<RunOutput, RunError>) -> String {
    let done = done.unwrap_or_else(|error| panic!("the logout run failed: {error}"));
    assert!(done.token.as_bytes().is_empty(), "a logout prints no token");
    assert!(done.state.is_empty(), "a logout writes no state");
    done.stderr_tail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_refresh_token_at_the_provider() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let driver = LoggedDriver::http(&[]);
    let first = Run::new(&dev_args(&idp.issuer, &driver.command))
        .go()
        .await
        .expect("a login");
    assert!(state_json(&first.state)["refresh_token"].is_string());

    let said = logout(|browser| dev_args(&idp.issuer, browser), &first.state).await;
    assert!(
        said.contains("logged out: the refresh token was revoked at 127.0.0.1"),
        "{said}"
    );
    assert!(!said.contains("eyJ"), "{said}");
    assert_eq!(driver.logins(), 1, "no login on logout: {}", driver.log());

    // The same state no longer refreshes: the provider forgot the token.
    // (Without the logout it refreshes: oidc_flows.rs.)
    quiet_refused_refresh(&idp.issuer, &first.state)
        .await
        .assert_clean("refused the refresh token");
}

#[tokio::test]
async fn logout_without_a_revocation_endpoint_says_the_token_stays_valid() {
    let stub = Stub::start(Case::Honest).await;
    let first = Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .go()
        .await
        .expect("a login");
    let logins = stub.authorize_hits();
    let said = logout(
        |browser| stub_args(&stub.issuer, "browser", browser),
        &first.state,
    )
    .await;
    assert!(
        said.contains(
            "lists no revocation endpoint (RFC 7009) in its discovery document or its authorization server metadata, so its refresh token stays valid there"
        ),
        "{said}"
    );
    assert_eq!(stub.authorize_hits(), logins, "no login on logout");
    assert_eq!(stub.refresh_hits(), 0, "a logout spends nothing");
}

#[tokio::test]
async fn logout_with_no_state_needs_no_provider() {
    // Nothing listens there: a logout with nothing to revoke must not try.
    let issuer = "http://127.0.0.1:9";
    let said = logout(
        |browser| stub_args(issuer, "browser", browser),
        &State::default(),
    )
    .await;
    assert!(said.contains("logged out: no login was held"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_client_authenticates_its_revocation() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let output = client_credentials(&idp.issuer, "machine-secret")
        .go()
        .await
        .expect("client credentials");
    let logout_as = |secret: &str| {
        client_credentials(&idp.issuer, secret)
            .state(&output.state)
            .reason(Reason::Logout)
    };
    // A wrong secret: the provider refuses, and the run says so and fails.
    logout_as("wrong-secret")
        .go_refused()
        .await
        .assert_clean("revoking the token on logout: the provider refused client `machine` (HTTP 401: invalid_client");
    let said = worked(logout_as("machine-secret").go().await);
    assert!(
        said.contains("logged out: the access token was revoked"),
        "{said}"
    );
}

#[tokio::test]
async fn a_revocation_endpoint_less_safe_than_the_issuer_gets_no_token() {
    let stub = Stub::start(Case::NonLoopbackHttpRevocationEndpoint).await;
    let first = Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .go()
        .await
        .expect("a login");
    let browser = ForbiddenBrowser::new();
    Run::new(&stub_args(&stub.issuer, "browser", &browser.command))
        .state(&first.state)
        .reason(Reason::Logout)
        .go_refused()
        .await
        .assert_clean("the provider gives its revocation_endpoint as http://stub.invalid:");
    browser.assert_unused();
}
