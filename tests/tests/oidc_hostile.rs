//! authplug-oidc against a hostile provider (the stub in oidc_support/stub.rs):
//! every lie it tells must end the run with an error, no token and the
//! caller's state untouched; after a bad callback the code never reaches
//! the token endpoint. Key rotation (an unknown `kid`, then a new JWKS) is
//! the one surprise that must be accepted.

mod oidc_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use authplug_protocol::host::{RunError, RunOutput};
use authplug_protocol::State;
use oidc_support::stub::{Case, Stub};
use oidc_support::{jwt_claims, state_json, Run};

const CLIENT: &str = "stub-client";

async fn login(stub: &Stub, state: &State) -> Result<RunOutput, RunError> {
    Run::new(&[
        "--issuer",
        &stub.issuer,
        "--client-id",
        CLIENT,
        "--flow",
        "browser",
        "--browser-command",
        "curl -sS -L -o /dev/null",
        "--login-timeout",
        "10",
        "--http-timeout",
        "5",
    ])
    .state(state)
    .go()
    .await
}

/// A state a previous good run left: another issuer's, so the plugin
/// ignores it; what matters is that the host hands it back unchanged.
fn previous_state() -> State {
    State::new(br#"{"version":1,"issuer":"http://127.0.0.1:1","client_id":"x"}"#.to_vec())
}

async fn refused(case: Case, expect_in_error: &str) -> Arc<Stub> {
    let stub = Stub::start(case).await;
    let state = previous_state();
    let before = state.clone();
    let error = login(&stub, &state)
        .await
        .expect_err(&format!("{case:?} must not yield a token"));
    let message = error.to_string();
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{case:?}: {message}"
    );
    assert!(
        message.contains(expect_in_error),
        "{case:?}: expected {expect_in_error:?} in: {message}"
    );
    for secret in ["stub-access-token", "stub-refresh-token", "eyJ"] {
        assert!(
            !message.contains(secret),
            "{case:?} leaked a token: {message}"
        );
    }
    assert_eq!(state, before, "the caller's state is untouched");
    stub
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
    several_audiences,
    Case::ExtraAudNoAzp,
    "not a trusted audience"
);
refused!(wrong_azp, Case::WrongAzp, "azp");
refused!(wrong_nonce, Case::WrongNonce, "once");
refused!(expired, Case::Expired, "expired");
refused!(iat_in_the_future, Case::IatInFuture, "future");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_iss_mismatch_never_reaches_the_token_endpoint() {
    let stub = refused(Case::CallbackIssMismatch, "RFC 9207").await;
    assert_eq!(stub.token_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_without_advertised_iss_never_reaches_the_token_endpoint() {
    let stub = refused(Case::CallbackIssMissing, "has no iss").await;
    assert_eq!(stub.token_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_a_clear_error_and_never_reaches_the_token_endpoint() {
    let stub = refused(Case::AccessDenied, "refused the login: access_denied").await;
    assert_eq!(stub.token_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_provider_is_accepted() {
    let stub = Stub::start(Case::Honest).await;
    let output = login(&stub, &State::default()).await.expect("a login");
    let token = output.token.to_str().unwrap().to_owned();
    assert_eq!(jwt_claims(&token)["sub"], "alice");
    let state = state_json(&output.state);
    assert_eq!(state["issuer"], stub.issuer);
    assert_eq!(state["subject"], "alice");
    assert_eq!(state["refresh_token"], "stub-refresh-token-1");
    assert!(!output.stderr_tail.contains(&token));
    assert!(output
        .stderr_tail
        .contains("if your browser did not open, visit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_the_jwks_once_and_is_accepted() {
    let stub = Stub::start(Case::RotatedKey).await;
    let output = login(&stub, &State::default())
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
