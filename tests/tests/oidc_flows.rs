//! authplug-oidc's refresh, device and client-credentials flows against the
//! stub provider (oidc_support/stub.rs), which keeps refresh tokens like an
//! honest provider: rotated on each use, refused once spent or revoked.

mod oidc_support;

use std::path::{Path, PathBuf};

use authplug_protocol::host::RunOutput;
use authplug_protocol::{Reason, State};
use oidc_support::stub::{Case, Stub};
use oidc_support::{jwt_claims, state_json, Run};

const CURL: &str = "curl -sS -L -o /dev/null";

fn args<'a>(stub: &'a Stub, browser_command: &'a str) -> Vec<&'a str> {
    vec![
        "--issuer",
        &stub.issuer,
        "--client-id",
        "stub-client",
        "--browser-command",
        browser_command,
        "--http-timeout",
        "5",
        "--login-timeout",
        "10",
    ]
}

/// A browser command that leaves a mark and fails: it must never run.
fn forbidden_browser(dir: &Path) -> (String, PathBuf) {
    let marker = dir.join("browser-was-called");
    (
        format!("sh -c 'touch {}; exit 1'", marker.display()),
        marker,
    )
}

async fn first_login(stub: &Stub) -> RunOutput {
    Run::new(&args(stub, CURL)).go().await.expect("first login")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refreshed_without_a_browser() {
    let stub = Stub::start(Case::Honest).await;
    // Lives 30 s: inside the 60 s skew, so the next run must refresh.
    stub.id_token_ttl
        .store(30, std::sync::atomic::Ordering::SeqCst);
    let first = first_login(&stub).await;
    let dir = tempfile::tempdir().unwrap();
    let (browser, marker) = forbidden_browser(dir.path());
    let second = Run::new(&args(&stub, &browser))
        .state(&first.state)
        .go()
        .await
        .expect("a silent refresh");
    assert!(!marker.exists(), "the refresh opened a browser");
    assert_eq!(stub.grant_types(), ["authorization_code", "refresh_token"]);
    let state = state_json(&second.state);
    assert_eq!(state["refresh_token"], "stub-refresh-token-2", "rotated");
    assert_eq!(state["subject"], "alice");
    assert_eq!(jwt_claims(second.token.to_str().unwrap())["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_or_revoked_refresh_token_leads_to_a_new_login() {
    let stub = Stub::start(Case::Honest).await;
    let first = first_login(&stub).await;
    // Rejected: refresh even though the token is valid; RT 1 is now spent.
    let second = Run::new(&args(&stub, CURL))
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("refresh");
    assert_eq!(stub.grant_types().len(), 2);

    // Reusing the spent refresh token: refused, so a new login (the
    // interactive "browser" completes it).
    let third = Run::new(&args(&stub, CURL))
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a new login");
    assert!(
        third.stderr_tail.contains("the refresh token was refused"),
        "{}",
        third.stderr_tail
    );
    assert!(third.stderr_tail.contains("invalid_grant"));
    assert_eq!(
        stub.grant_types(),
        [
            "authorization_code",
            "refresh_token",
            "refresh_token",
            "authorization_code"
        ]
    );

    // Revoked, and no login allowed: a clear error, no browser.
    stub.revoke_refresh_tokens();
    let dir = tempfile::tempdir().unwrap();
    let (browser, marker) = forbidden_browser(dir.path());
    let error = Run::new(&args(&stub, &browser))
        .state(&second.state)
        .reason(Reason::Rejected)
        .interactive(false)
        .go()
        .await
        .expect_err("no login allowed");
    let message = error.to_string();
    assert!(message.contains("refresh token was refused"), "{message}");
    assert!(message.contains("AUTHPLUG_INTERACTIVE=0"), "{message}");
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_approved() {
    let stub = Stub::start(Case::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let (browser, marker) = forbidden_browser(dir.path());
    let mut argv = args(&stub, &browser);
    argv.extend(["--flow", "device"]);
    let output = Run::new(&argv).go().await.expect("device login");
    assert!(
        output.stderr_tail.contains("enter the code ABCD-EFGH"),
        "{}",
        output.stderr_tail
    );
    assert!(output
        .stderr_tail
        .contains("/device-login?user_code=ABCD-EFGH"));
    assert_eq!(jwt_claims(output.token.to_str().unwrap())["sub"], "alice");
    assert_eq!(
        stub.grant_types().len(),
        2,
        "one pending poll, then the tokens"
    );
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_denied() {
    let stub = Stub::start(Case::DeviceDenied).await;
    let mut argv = args(&stub, "true");
    argv.extend(["--flow", "device"]);
    let error = Run::new(&argv).go().await.expect_err("denied");
    let message = error.to_string();
    assert!(message.contains("the login was denied"), "{message}");
    assert!(message.contains("access_denied"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_the_right_and_a_wrong_secret() {
    let stub = Stub::start(Case::Honest).await;
    let argv = [
        "--issuer",
        &stub.issuer,
        "--client-id",
        "machine",
        "--flow",
        "client-credentials",
    ];
    let output = Run::new(&argv)
        .interactive(false)
        .env("AUTHPLUG_OIDC_CLIENT_SECRET", "stub-secret")
        .go()
        .await
        .expect("client credentials");
    assert_eq!(output.token.to_str().unwrap(), "stub-access-token-1");
    assert!(!output.stderr_tail.contains("stub-secret"));
    // The cached access token is reused while valid.
    let again = Run::new(&argv)
        .state(&output.state)
        .interactive(false)
        .env("AUTHPLUG_OIDC_CLIENT_SECRET", "stub-secret")
        .go()
        .await
        .expect("cached");
    assert_eq!(again.token, output.token);
    assert_eq!(stub.token_hits(), 1);

    let error = Run::new(&argv)
        .interactive(false)
        .env("AUTHPLUG_OIDC_CLIENT_SECRET", "wrong-secret")
        .go()
        .await
        .expect_err("a wrong secret");
    let message = error.to_string();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains("wrong-secret"), "{message}");

    let error = Run::new(&argv)
        .state(&State::default())
        .go()
        .await
        .expect_err("no secret at all");
    assert!(error.to_string().contains("AUTHPLUG_OIDC_CLIENT_SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_for_a_resource() {
    let stub = Stub::start(Case::Honest).await;
    let mut argv = args(&stub, CURL);
    argv.extend(["--token", "access", "--resource", "https://api.example"]);
    let output = Run::new(&argv).go().await.expect("login");
    let claims = jwt_claims(output.token.to_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(stub.last_resource().as_deref(), Some("https://api.example"));
    assert_eq!(
        state_json(&output.state)["access_token_resource"],
        "https://api.example"
    );
}
