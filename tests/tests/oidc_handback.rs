//! No refresh token is ever orphaned. Whatever a run of authplug-oidc
//! obtains, a refresh token still live at the provider when the run ends
//! is in what the host got back: the new state on success, or the state a
//! failed run asked the host to keep (PROTOCOL.md rule 4's keep-state
//! exit); else it was revoked (a login answer that failed a check). A run
//! that exits holding a live refresh token nobody has fails these tests.
//!
//! The stub provider (oidc_support/stub.rs) keeps the ledger: every refresh
//! token it gave out in an answer a client can read, each one spent by a
//! refresh grant (it rotates), each one revoked. Every flow runs against
//! every way the stub can misbehave.

mod oidc_support;

use authplug_protocol::host::{RunError, RunOutput};
use authplug_protocol::State;
use oidc_support::stub::{Alg, Case, Quirk, Refresh, Stub};
use oidc_support::{stub_args, Run, CURL_BROWSER};

/// Every way the stub can answer a login that ends within a few seconds
/// (the device cases that poll until the login times out obtain nothing
/// and would only slow this down; oidc_flows runs them).
fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case::Honest,
        Case::BadSignature,
        Case::AlgNone,
        Case::Hs256,
        Case::WrongIss,
        Case::WrongAud,
        Case::ExtraAudNoAzp,
        Case::ExtraAudWithAzp,
        Case::ExtraAudWrongAzp,
        Case::WrongAzp,
        Case::WrongNonce,
        Case::Expired,
        Case::IatInFuture,
        Case::MissingSub,
        Case::SignedWith(Alg::Es256),
        Case::NotAdvertised(Alg::Es256),
        Case::DiscoveryIssuerMismatch,
        Case::CallbackIssMismatch,
        Case::CallbackIssMissing,
        Case::AccessDenied,
        Case::RotatedKey,
        Case::TokenServerError,
        Case::TokenNotJson,
        Case::DiscoveryRedirect,
        Case::NonLoopbackHttpTokenEndpoint,
        Case::DeviceDeniedWithEscapes,
        Case::DeviceHttpVerificationUri,
        Case::NoKidUnknownKey,
    ];
    cases.extend(
        [
            Quirk::StringClaims,
            Quirk::BigAndNestedClaims,
            Quirk::FractionalTimes,
            Quirk::NoKid,
            Quirk::BareJwks,
            Quirk::NoTyp,
            Quirk::StringExpAccessToken,
        ]
        .map(Case::Quirk),
    );
    cases
}

/// What the host holds after the run: the new state, or the state a
/// failed run asked it to keep; `None`: it keeps its old one.
fn handed_back(result: Result<RunOutput, RunError>) -> (bool, Option<State>) {
    match result {
        Ok(output) => (true, Some(output.state)),
        Err(mut error) => (false, error.take_new_state()),
    }
}

/// Fails if the stub has a live refresh token that `held` does not hold.
fn assert_none_orphaned(stub: &Stub, held: Option<&State>, what: &str) {
    let held = held.map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned());
    for live in stub.live_refresh_tokens() {
        assert!(
            held.as_deref().is_some_and(|h| h.contains(&live)),
            "{what}: the run left the live refresh token {live} with nobody holding it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_login_of_any_flow_leaves_a_live_refresh_token_behind() {
    // Runs that failed after the provider gave a refresh token: the ones
    // this test is about (it would pass vacuously without them).
    let mut failed_holding_one = 0;
    for case in cases() {
        for flow in ["browser", "device"] {
            for token in ["id", "access"] {
                let stub = Stub::start(case).await;
                stub.offer_revocation();
                let issued_before = stub.issued_refresh_tokens();
                let result = Run::new(&stub_args(&stub.issuer, flow, CURL_BROWSER))
                    .args(&["--token", token])
                    .go()
                    .await;
                let what = format!("{case:?}, {flow}, {token}");
                if case == Case::Honest {
                    assert!(result.is_ok(), "{what}: {:?}", result.err());
                }
                let (ok, held) = handed_back(result);
                if !ok && stub.issued_refresh_tokens() > issued_before {
                    failed_holding_one += 1;
                }
                assert_none_orphaned(&stub, held.as_ref(), &what);
            }
        }
    }
    assert!(
        failed_holding_one >= 20,
        "only {failed_holding_one} runs failed after obtaining a refresh token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refresh_of_any_kind_leaves_a_live_refresh_token_behind() {
    for refresh in [
        Refresh::Honest,
        Refresh::WithoutNonce,
        Refresh::ChangedSub,
        Refresh::BadSignature,
        Refresh::WrongIss,
        Refresh::NoIdToken,
        Refresh::RotatedKey,
        Refresh::WrongNonce,
        Refresh::MissingSub,
    ] {
        for token in ["id", "access"] {
            let stub = Stub::start(Case::Honest).await;
            stub.offer_revocation();
            let args = stub_args(&stub.issuer, "browser", CURL_BROWSER);
            let login = Run::new(&args)
                .args(&["--token", token])
                .go()
                .await
                .expect("the login");
            stub.set_refresh(refresh);
            // `rejected`: the token is refused, so a refresh it is.
            let result = Run::new(&args)
                .args(&["--token", token])
                .state(&login.state)
                .interactive(false)
                .reason(authplug_protocol::Reason::Rejected)
                .go()
                .await;
            let (ok, held) = handed_back(result);
            // A failure that hands back nothing leaves the host its old
            // state, whose refresh token must then still be live.
            let held = held.or((!ok).then_some(login.state));
            assert_none_orphaned(&stub, held.as_ref(), &format!("{refresh:?}, {token}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_leave_no_live_refresh_token_behind() {
    let stub = Stub::start(Case::Honest).await;
    let result = Run::new(&stub_args(&stub.issuer, "client-credentials", "true"))
        .interactive(false)
        .env("AUTHPLUG_OIDC_CLIENT_SECRET", "stub-secret")
        .go()
        .await;
    let (ok, held) = handed_back(result);
    assert!(ok, "client credentials against the honest stub");
    assert_none_orphaned(&stub, held.as_ref(), "client credentials");
}

/// The control: without a revocation endpoint, a login answer that fails
/// a check leaves its refresh token live, and the run says so (and this
/// file's check would catch it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_answer_says_its_refresh_token_stays_valid_without_a_revocation_endpoint() {
    let stub = Stub::start(Case::WrongNonce).await;
    let error = Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .go()
        .await
        .expect_err("a wrong nonce is refused");
    assert_eq!(stub.live_refresh_tokens().len(), 1);
    let said = error.to_string();
    assert!(
        said.contains("could not be used, nor its refresh token; the provider lists no revocation endpoint, so that token stays valid there until it expires"),
        "{said}"
    );
    let revocable = Stub::start(Case::WrongNonce).await;
    revocable.offer_revocation();
    let error = Run::new(&stub_args(&revocable.issuer, "browser", CURL_BROWSER))
        .go()
        .await
        .expect_err("a wrong nonce is refused");
    assert!(revocable.live_refresh_tokens().is_empty());
    assert!(
        error
            .to_string()
            .contains("its refresh token was revoked, not used"),
        "{error}"
    );
}
