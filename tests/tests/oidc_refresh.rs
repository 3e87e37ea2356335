//! authplug-oidc's refresh against the stub provider (oidc_support/stub.rs)
//! for what the real dev IdP will not do: refresh responses that lie, or
//! that carry no ID token, and the age of the cached discovery document
//! and keys. Every case starts from a usable state (a login with the same
//! stub), so "the state is unchanged" means something: a refused refresh
//! writes nothing, and the same state refreshes fine once the provider is
//! honest again.

mod oidc_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use authplug_protocol::host::RunOutput;
use authplug_protocol::{Reason, State};
use oidc_support::stub::{Case, Refresh, Stub};
use oidc_support::{
    jwt_claims, state_json, stub_args, token_text, unix_now, ForbiddenBrowser, Run, CURL_BROWSER,
};
use serde_json::{json, Value};

const CURL: &str = CURL_BROWSER;
const DAY: i64 = 24 * 60 * 60;

fn args(stub: &Stub, browser: &str) -> Vec<String> {
    stub_args(&stub.issuer, "browser", browser)
}

/// A first login (the stub's authorize endpoint redirects straight back).
async fn logged_in(extra: &[&str]) -> (Arc<Stub>, RunOutput) {
    let stub = Stub::start(Case::Honest).await;
    let output = Run::new(&args(&stub, CURL))
        .args(extra)
        .go()
        .await
        .expect("a first login");
    (stub, output)
}

/// A run that must refresh (the token was rejected) and must not log in.
fn refresh(stub: &Stub, browser: &ForbiddenBrowser, state: &State) -> Run {
    Run::new(&args(stub, &browser.command))
        .state(state)
        .reason(Reason::Rejected)
}

/// After a refusal: the same state, the provider honest again, refreshes
/// without a login.
async fn still_usable(stub: &Stub, state: &State) {
    stub.set_refresh(Refresh::Honest);
    let logins = stub.authorize_hits();
    let browser = ForbiddenBrowser::new();
    let output = refresh(stub, &browser, state)
        .go()
        .await
        .expect("the held state still refreshes");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    assert_eq!(stub.authorize_hits(), logins, "no new login");
    browser.assert_unused();
}

/// A refresh whose ID token fails a check: an error, no token printed, and
/// of the response only the rotated refresh token is kept (the old one is
/// spent: a run never throws away a refresh token it was handed), handed
/// back as a failed run's state (rule 4). The tokens held stay the old ones.
async fn refused_refresh(lie: Refresh, needle: &str) {
    let (stub, first) = logged_in(&[]).await;
    stub.set_refresh(lie);
    let browser = ForbiddenBrowser::new();
    let (message, kept) = refresh(&stub, &browser, &first.state)
        .go_failed_keeping_state()
        .await;
    assert!(
        message.contains(needle),
        "expected {needle:?} in: {message}"
    );
    assert!(!message.contains("stub-access-token"), "{message}");
    assert_eq!(stub.refresh_hits(), 1);
    // A lying refresh is an error, not a reason to log in again.
    assert_eq!(stub.authorize_hits(), 1);
    browser.assert_unused();
    let (before, after) = (state_json(&first.state), state_json(&kept));
    assert_eq!(
        after["refresh_token"], "stub-refresh-token-1",
        "rotated, kept"
    );
    assert_eq!(
        after["access_token"], before["access_token"],
        "nothing else taken"
    );
    assert!(
        after.get("id_token").is_none() || after["id_token"] == before["id_token"],
        "the refused ID token is not kept: {after}"
    );
    still_usable(&stub, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_id_token_for_another_user_is_refused() {
    refused_refresh(
        Refresh::ChangedSub,
        "ID token is invalid: it names the user \"mallory\", but the session belongs to \"alice\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_id_token_with_a_bad_signature_is_refused() {
    refused_refresh(Refresh::BadSignature, "ID token is invalid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_id_token_from_another_issuer_is_refused() {
    refused_refresh(Refresh::WrongIss, "ID token is invalid: Invalid issuer").await;
}

/// No nonce was sent with the refresh grant, so none is required back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_id_token_without_a_nonce_is_accepted() {
    let (stub, first) = logged_in(&[]).await;
    stub.set_refresh(Refresh::WithoutNonce);
    let browser = ForbiddenBrowser::new();
    let output = refresh(&stub, &browser, &first.state)
        .go()
        .await
        .expect("a refresh");
    let claims = jwt_claims(&token_text(&output));
    assert_eq!(claims["sub"], "alice");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert_ne!(output.token, first.token);
    browser.assert_unused();
}

/// `--token access`: a refresh without an ID token is fine, and the old ID
/// token, still valid, stays in the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_id_token_a_refresh_keeps_the_old_one_while_it_is_valid() {
    let access = ["--token", "access"];
    let (stub, first) = logged_in(&access).await;
    stub.set_refresh(Refresh::NoIdToken);
    let browser = ForbiddenBrowser::new();
    let output = refresh(&stub, &browser, &first.state)
        .args(&access)
        .go()
        .await
        .expect("a refresh");
    assert_eq!(token_text(&output), "stub-access-token-1");
    let (before, after) = (state_json(&first.state), state_json(&output.state));
    assert_eq!(
        after["id_token"], before["id_token"],
        "the old ID token kept"
    );
    assert_eq!(after["refresh_token"], "stub-refresh-token-1", "rotated");
    browser.assert_unused();
}

/// `--token id`, and the old ID token counts as expired (a skew longer
/// than its 300 s): a refresh without an ID token leads to a login, which
/// AUTHPLUG_INTERACTIVE=0 forbids. The refresh rotated the refresh token,
/// so the failed run hands back its new state (rule 4), and the next run
/// knows better than to spend the refresh token again: non-interactive, it
/// says a login is needed at once; interactive, it logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_id_token_a_refresh_needs_a_login_once_the_old_one_expired() {
    let (stub, first) = logged_in(&[]).await;
    stub.set_refresh(Refresh::NoIdToken);
    let browser = ForbiddenBrowser::new();
    let (message, kept) = Run::new(&args(&stub, &browser.command))
        .args(&["--skew", "400"])
        .state(&first.state)
        .interactive(false)
        .go_failed_keeping_state()
        .await;
    assert!(message.contains("AUTHPLUG_INTERACTIVE=0"), "{message}");
    assert!(
        message.contains("the refresh gave no new ID token and the old one has expired"),
        "{message}"
    );
    assert!(message.contains("updated state"), "{message}");
    assert_eq!(stub.refresh_hits(), 1);
    let kept_json = state_json(&kept);
    assert_eq!(
        kept_json["refresh_token"], "stub-refresh-token-1",
        "the rotated refresh token is kept"
    );
    assert_eq!(kept_json["refresh_gives_id_token"], false);
    browser.assert_unused();

    // Knowing this provider, the next quiet run spends nothing.
    let refusal = Run::new(&args(&stub, &browser.command))
        .args(&["--skew", "400"])
        .state(&kept)
        .interactive(false)
        .go_refused()
        .await;
    refusal.assert_clean("this provider gives no new ID token on refresh");
    assert!(
        refusal.message.contains("run `authplug token`"),
        "{}",
        refusal.message
    );
    assert_eq!(stub.refresh_hits(), 1, "no refresh for nothing");

    let output = Run::new(&args(&stub, CURL))
        .args(&["--skew", "400"])
        .state(&kept)
        .go()
        .await
        .expect("a new login");
    assert_eq!(stub.authorize_hits(), 2, "logged in again");
    assert_eq!(stub.refresh_hits(), 1, "straight to the login");
    assert_ne!(output.token, first.token);
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
}

/// The state with the provider cache's fetch times replaced.
fn with_fetch_times(state: &State, discovery: Value, jwks: Value) -> State {
    let mut json = state_json(state);
    json["provider"]["discovery_fetched_at"] = discovery;
    json["provider"]["jwks_fetched_at"] = jwks;
    State::new(serde_json::to_vec(&json).unwrap())
}

/// Key rotation renews the cached keys, not the discovery document: it is
/// still fetched again once it is a day old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_refetch_leaves_the_discovery_documents_age_alone() {
    let (stub, first) = logged_in(&[]).await;
    assert_eq!(stub.discovery_hits(), 1);
    let almost_a_day_ago = unix_now() - DAY + 3600;
    let aged = with_fetch_times(
        &first.state,
        json!(almost_a_day_ago),
        json!(almost_a_day_ago),
    );
    stub.set_refresh(Refresh::RotatedKey);
    let browser = ForbiddenBrowser::new();
    let second = refresh(&stub, &browser, &aged)
        .go()
        .await
        .expect("a refresh signed with a rotated key");
    assert_eq!(
        stub.jwks_hits.load(Ordering::SeqCst),
        2,
        "keys fetched again"
    );
    assert_eq!(stub.discovery_hits(), 1, "the cached document was used");
    let provider = &state_json(&second.state)["provider"];
    assert_eq!(provider["jwks"]["keys"][0]["kid"], "new");
    assert_eq!(provider["discovery_fetched_at"], almost_a_day_ago);
    assert!(provider["jwks_fetched_at"].as_i64().unwrap() >= unix_now() - 60);

    stub.set_refresh(Refresh::Honest);
    let stale = with_fetch_times(
        &second.state,
        json!(unix_now() - DAY - 60),
        provider["jwks_fetched_at"].clone(),
    );
    let third = refresh(&stub, &browser, &stale)
        .go()
        .await
        .expect("a refresh");
    assert_eq!(
        stub.discovery_hits(),
        2,
        "a day-old document is fetched again"
    );
    let provider = &state_json(&third.state)["provider"];
    assert!(provider["discovery_fetched_at"].as_i64().unwrap() >= unix_now() - 60);
    browser.assert_unused();
}

/// A version-1 state written before the two times were kept apart (one
/// `fetched_at`): still read, tokens and all; its provider cache counts as
/// stale and is discovered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_cache_with_one_fetch_time_is_discovered_again() {
    let (stub, first) = logged_in(&[]).await;
    let mut json = state_json(&first.state);
    let provider = json["provider"].as_object_mut().unwrap();
    provider.remove("discovery_fetched_at");
    provider.remove("jwks_fetched_at");
    provider.insert("fetched_at".into(), json!(unix_now()));
    let old = State::new(serde_json::to_vec(&json).unwrap());
    let browser = ForbiddenBrowser::new();
    let output = refresh(&stub, &browser, &old)
        .go()
        .await
        .expect("a refresh from the old state");
    assert_eq!(stub.discovery_hits(), 2, "discovered again");
    assert_eq!(
        stub.refresh_hits(),
        1,
        "the old state's refresh token was used"
    );
    assert_eq!(stub.authorize_hits(), 1, "no new login");
    let provider = &state_json(&output.state)["provider"];
    assert!(provider["discovery_fetched_at"].as_i64().unwrap() >= unix_now() - 60);
    assert!(provider.get("fetched_at").is_none(), "{provider}");
    browser.assert_unused();
}
