//! authplug-oidc against a hostile provider (the stub in oidc_support/stub.rs,
//! for what the real dev IdP cannot be made to do): every lie it tells must
//! end the run with exit code 1, nothing on stdout (no token) and nothing
//! on fd 3 (the caller keeps its state); after a bad callback the code never
//! reaches the token endpoint. Key rotation (an unknown `kid`, then a new
//! JWKS) is the one surprise that must be accepted, and a device-flow
//! `slow_down` must make the plugin poll less often.

mod oidc_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use authplug_protocol::State;
use oidc_support::stub::{Alg, Case, Stub};
use oidc_support::{jwt_claims, state_json, stub_args, token_text, Run, CURL_BROWSER, STUB_CLIENT};

const CLIENT: &str = STUB_CLIENT;
const CURL: &str = CURL_BROWSER;

fn login(stub: &Stub, browser_command: &str) -> Run {
    Run::new(&stub_args(&stub.issuer, "browser", browser_command))
}

/// A state a previous good run left: another issuer's, so the plugin
/// ignores it; a failing run must not replace it.
fn previous_state() -> State {
    State::new(br#"{"version":1,"issuer":"http://127.0.0.1:1","client_id":"x"}"#.to_vec())
}

async fn refused(case: Case, expect_in_error: &str) -> (Arc<Stub>, String) {
    let stub = Stub::start(case).await;
    let refusal = login(&stub, CURL)
        .state(&previous_state())
        .go_refused()
        .await;
    let message = refusal.assert_clean(expect_in_error).to_owned();
    assert!(
        !message.contains("stub-access-token") && !message.contains("stub-refresh-token"),
        "{case:?} leaked a token: {message}"
    );
    (stub, message)
}

macro_rules! refused {
    ($name:ident, $case:expr, $needle:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            refused($case, $needle).await;
        }
    };
}

refused!(bad_signature, Case::BadSignature, "ID token is invalid");
refused!(alg_none, Case::AlgNone, "ID token is invalid");
refused!(
    hs256_for_a_public_client,
    Case::Hs256,
    "ID token is invalid"
);
refused!(wrong_iss, Case::WrongIss, "ID token is invalid");
refused!(wrong_aud, Case::WrongAud, "ID token is invalid");
refused!(
    several_audiences_without_azp,
    Case::ExtraAudNoAzp,
    "ID token is invalid: it has several audiences but no azp claim"
);
refused!(
    several_audiences_with_another_azp,
    Case::ExtraAudWrongAzp,
    "ID token is invalid: its azp is \"someone-else\", not this client"
);
refused!(wrong_azp, Case::WrongAzp, "azp");
refused!(wrong_nonce, Case::WrongNonce, "once");
refused!(expired, Case::Expired, "expired");
refused!(
    iat_in_the_future,
    Case::IatInFuture,
    "ID token is invalid: its iat says it was issued in the future"
);
refused!(missing_sub, Case::MissingSub, "not a valid token response");
refused!(
    discovery_issuer_mismatch,
    Case::DiscoveryIssuerMismatch,
    "issuer"
);
refused!(
    discovery_redirect_not_followed,
    Case::DiscoveryRedirect,
    "discovery"
);
refused!(
    token_endpoint_500,
    Case::TokenServerError,
    "exchanging the login code"
);
refused!(
    token_endpoint_html,
    Case::TokenNotJson,
    "exchanging the login code"
);

/// A loopback http issuer may have http endpoints on loopback only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_token_endpoint_off_loopback_is_refused() {
    let (stub, message) = refused(
        Case::NonLoopbackHttpTokenEndpoint,
        "gives its token_endpoint as http://stub.invalid:",
    )
    .await;
    assert!(message.contains("only on loopback"), "{message}");
    assert_eq!(stub.authorize_hits(), 0, "the browser was sent to log in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_iss_mismatch_never_reaches_the_token_endpoint() {
    let (stub, _) = refused(Case::CallbackIssMismatch, "RFC 9207").await;
    assert_eq!(stub.token_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_without_advertised_iss_never_reaches_the_token_endpoint() {
    let (stub, _) = refused(Case::CallbackIssMissing, "has no iss").await;
    assert_eq!(stub.token_hits(), 0);
}

/// The provider's error description is shown in the listener's page, with
/// its markup escaped; the code never reaches the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_a_clear_error_and_its_page_is_escaped() {
    let stub = Stub::start(Case::AccessDenied).await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    let browser = format!("sh -c 'curl -sS -L \"$0\" > {}'", page.display());
    let refusal = login(&stub, &browser)
        .state(&previous_state())
        .go_refused()
        .await;
    let message = refusal.assert_clean("refused the login: access_denied");
    assert!(message.contains("<b>no</b> & never"), "{message}");
    assert_eq!(stub.token_hits(), 0);
    let page = std::fs::read_to_string(&page).expect("the browser saved the page");
    assert!(page.contains("access_denied"), "{page}");
    assert!(page.contains("&lt;b&gt;no&lt;/b&gt; &amp; never"), "{page}");
    assert!(!page.contains("<b>no</b>"), "unescaped markup: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_provider_is_accepted() {
    let stub = Stub::start(Case::Honest).await;
    let output = login(&stub, CURL).go().await.expect("a login");
    let token = token_text(&output);
    assert_eq!(jwt_claims(&token)["sub"], "alice");
    let state = state_json(&output.state);
    assert_eq!(state["issuer"], stub.issuer);
    assert_eq!(state["subject"], "alice");
    assert_eq!(state["refresh_token"], "stub-refresh-token-0");
    assert!(!output.stderr_tail.contains(&token));
    assert!(output
        .stderr_tail
        .contains("if your browser did not open, visit"));
}

refused!(
    ps256_when_not_advertised,
    Case::NotAdvertised(Alg::Ps256),
    "Disallowed signature algorithm: algorithm `PS256` is not one of: EdDSA"
);
refused!(
    es256_when_not_advertised,
    Case::NotAdvertised(Alg::Es256),
    "Disallowed signature algorithm: algorithm `ES256` is not one of: EdDSA"
);

/// RSA-PSS and ECDSA ID tokens verify when the provider advertises them.
async fn accepted_when_advertised(alg: Alg, name: &str) {
    let stub = Stub::start(Case::SignedWith(alg)).await;
    let output = login(&stub, CURL).go().await.expect("a login");
    let token = token_text(&output);
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], name);
    assert_eq!(jwt_claims(&token)["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps256_is_accepted_when_advertised() {
    accepted_when_advertised(Alg::Ps256, "PS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_is_accepted_when_advertised() {
    accepted_when_advertised(Alg::Es256, "ES256").await;
}

/// OIDC Core 3.1.3.7: other audiences besides this client are fine when
/// `azp` names this client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_audiences_with_azp_for_this_client_are_accepted() {
    let stub = Stub::start(Case::ExtraAudWithAzp).await;
    let output = login(&stub, CURL).go().await.expect("a login");
    let claims = jwt_claims(&token_text(&output));
    assert_eq!(claims["aud"], serde_json::json!([CLIENT, "someone-else"]));
    assert_eq!(claims["azp"], CLIENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_the_jwks_once_and_is_accepted() {
    let stub = Stub::start(Case::RotatedKey).await;
    let output = login(&stub, CURL)
        .go()
        .await
        .expect("a login after key rotation");
    assert_eq!(jwt_claims(output.token.to_str().unwrap())["sub"], "alice");
    assert_eq!(stub.jwks_hits.load(Ordering::SeqCst), 2);
    let keys = &state_json(&output.state)["provider"]["jwks"]["keys"];
    assert_eq!(
        keys[0]["kid"], "new",
        "the rotated JWKS is what the state keeps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_slow_down_makes_the_plugin_poll_less_often() {
    let stub = Stub::start(Case::DeviceSlowDown).await;
    let output = Run::new(&[
        "--issuer",
        &stub.issuer,
        "--client-id",
        CLIENT,
        "--flow",
        "device",
        "--login-timeout",
        "30",
    ])
    .go()
    .await
    .expect("a device login after slow_down");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    let polls = stub.device_polls();
    assert_eq!(polls.len(), 2, "one slow_down, then the tokens");
    // The stub's interval is 1 s; RFC 8628 3.5: slow_down adds 5 s.
    let gap = polls[1] - polls[0];
    assert!(gap >= Duration::from_secs(5), "polled again after {gap:?}");
}

fn device_login(stub: &Stub, login_timeout: &str) -> Run {
    Run::new(&[
        "--issuer",
        &stub.issuer,
        "--client-id",
        CLIENT,
        "--flow",
        "device",
        "--login-timeout",
        login_timeout,
        "--http-timeout",
        "5",
    ])
}

/// `interval: 100000` must not outlast --login-timeout (oauth2 sleeps the
/// interval before it looks at its deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_device_interval_still_ends_at_the_login_timeout() {
    let stub = Stub::start(Case::DevicePending { interval: 100_000 }).await;
    let started = std::time::Instant::now();
    let refusal = device_login(&stub, "2").go_refused().await;
    refusal.assert_clean("the device login was not completed within 2 seconds");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(stub.device_polls().len(), 1, "polled once, then waited");
}

/// A token endpoint that is not there: the wait ends after a few failed
/// polls, with the network error, not an `expired_token` much later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_polls_that_keep_failing_end_with_the_network_error() {
    let stub = Stub::start(Case::DeviceTokenEndpointDown).await;
    let started = std::time::Instant::now();
    let refusal = device_login(&stub, "60").go_refused().await;
    let message = refusal.assert_clean(
        "waiting for the device login: the provider could not be reached (the last 3 polls failed)",
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(!message.contains("expired"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

/// The same at the deadline: the last poll's network error is the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_polls_failing_at_the_deadline_report_the_network_error() {
    let stub = Stub::start(Case::DeviceTokenEndpointDown).await;
    let refusal = device_login(&stub, "1").go_refused().await;
    let message =
        refusal.assert_clean("waiting for the device login: the provider could not be reached");
    assert!(message.contains("Connection refused"), "{message}");
    assert!(!message.contains("expired"), "{message}");
}

/// The provider's error text reaches the user's terminal without its
/// escape sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_error_description_loses_its_control_characters() {
    let stub = Stub::start(Case::DeviceDeniedWithEscapes).await;
    let refusal = device_login(&stub, "20").go_refused().await;
    let message =
        refusal.assert_clean("the login was denied (access_denied: no?]0;pwned??[2J?[31mred)");
    assert!(
        !message.contains(['\u{1b}', '\u{7}']),
        "control characters: {message:?}"
    );
}
