//! authplug-oidc against the providers people run: the dev IdP bent to
//! answer as they do (scripts/dev-idp `bend`: refreshes without an ID token,
//! errors without a JSON body, `expires_in` as a string, extra members,
//! another content type), and the stub provider for what oidc-provider
//! cannot be made to sign (claims of other types, fractional times, no
//! `kid`). Every deviation yields a token; every security check still fails
//! closed; every refusal says what it means and loses nothing.

mod oidc_support;

use authplug_protocol::Reason;
use oidc_support::stub::{Case, Quirk, Refresh, Stub};
use oidc_support::tls::TlsStub;
use oidc_support::{
    admin, client_credentials, dev_args, jwt_claims, quiet_refused_refresh,
    relogin_after_refused_refresh, state_json, stub_args, token_text, unix_now, DevIdp,
    ForbiddenBrowser, LoggedDriver, Run, CURL_BROWSER, STUB_CLIENT,
};

fn start(config: &str) -> DevIdp {
    DevIdp::start(config).expect("the dev IdP starts")
}

/// The HTTP driver's login, then what a first run returns.
async fn logged_in(idp: &DevIdp, driver: &LoggedDriver) -> authplug_protocol::host::RunOutput {
    Run::new(&dev_args(&idp.issuer, &driver.command))
        .go()
        .await
        .expect("a first login")
}

/// The second provider of the report: it rotates refresh tokens, gives no
/// ID token on refresh, and (as RFC 9700 §4.14.2 recommends) revokes the
/// whole grant when a spent refresh token comes back. A run that refreshed
/// and then failed hands back its rotated refresh token (rule 4): the next
/// run refreshes with it, without a login, and the grant lives on. The old
/// state, replayed, is what would have locked the user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_refreshed_and_failed_loses_no_login() {
    let idp = start(r#"{"ttl":{"idToken":30},"bend":{"refreshWithoutIdToken":true}}"#);
    let driver = LoggedDriver::http(&[]);
    let first = logged_in(&idp, &driver).await;
    let forbidden = ForbiddenBrowser::new();
    let quiet = |state: &authplug_protocol::State| {
        Run::new(&dev_args(&idp.issuer, &forbidden.command))
            .state(state)
            .interactive(false)
    };
    // The ID token (30 s) is inside the 60 s skew: a refresh, which rotates
    // the refresh token and brings no ID token; no login allowed.
    let (message, kept) = quiet(&first.state).go_failed_keeping_state().await;
    assert!(message.contains("a login is needed"), "{message}");
    assert!(message.contains("run `authplug token`"), "{message}");
    let (before, after) = (state_json(&first.state), state_json(&kept));
    assert_ne!(
        after["refresh_token"], before["refresh_token"],
        "rotated and kept"
    );

    // The next run that can do without an ID token refreshes with the
    // rotated refresh token: no login, and the provider still honours it.
    let access = quiet(&kept)
        .args(&["--token", "access"])
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a refresh with the kept refresh token");
    let again = quiet(&access.state)
        .args(&["--token", "access"])
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("the grant is alive");
    assert_ne!(again.token, access.token);
    assert_eq!(driver.logins(), 1, "never a second login");
    forbidden.assert_unused();

    // What the old host did: replay the spent refresh token. The provider
    // takes it for a stolen one and revokes the grant.
    let replay = quiet(&first.state)
        .args(&["--token", "access"])
        .reason(Reason::Rejected)
        .go_refused()
        .await;
    replay.assert_clean("refused the refresh token (HTTP 400: invalid_grant");
    let revoked = quiet(&again.state)
        .args(&["--token", "access"])
        .reason(Reason::Rejected)
        .go_refused()
        .await;
    revoked.assert_clean("a login is needed");
}

/// A revoked grant answered with a bare 400 or 401 (empty, HTML or text):
/// the refresh token was refused, so a new login when one is allowed, the
/// clear message when not, with the status and what the body said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_is_understood_whatever_the_body() {
    for (status, body, shown) in [
        (400, "empty", "HTTP 400, empty body"),
        (401, "empty", "HTTP 401, empty body"),
        (400, "html", "HTTP 400, body: \"<!doctype html>"),
        (400, "text", "HTTP 400, body: \"invalid request\""),
    ] {
        let idp = start(&format!(
            r#"{{"bend":{{"tokenErrors":{{"status":{status},"body":"{body}"}}}}}}"#
        ));
        let driver = LoggedDriver::http(&[]);
        let args = dev_args(&idp.issuer, &driver.command);
        let first = logged_in(&idp, &driver).await;
        admin(&idp, "revoke-account", "account=alice").await;

        let refusal = quiet_refused_refresh(&idp.issuer, &first.state).await;
        let message = refusal.assert_clean("a login is needed");
        assert!(
            message.contains(&format!("refused the refresh token ({shown}")),
            "{message}"
        );
        assert!(message.contains("run `authplug token` "), "{message}");
        assert!(!message.contains("empty error response"), "{message}");

        relogin_after_refused_refresh(&args, &first.state, &driver).await;
    }
}

/// The report's third case: a wrong secret answered with a bare 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_answered_with_a_bare_403_names_the_client() {
    let idp = start(r#"{"bend":{"tokenErrors":{"status":403,"body":"empty"}}}"#);
    let refusal = client_credentials(&idp.issuer, "wrong-secret")
        .go_refused()
        .await;
    let message = refusal.assert_clean(
        "the provider refused client `machine` (HTTP 403, empty body): check the client secret",
    );
    assert!(!message.contains("wrong-secret"), "{message}");
    client_credentials(&idp.issuer, "machine-secret")
        .go()
        .await
        .expect("the right secret");
}

/// Client credentials send exactly the scopes given: none by default (the
/// login's `openid profile email` would be refused), and a scope the
/// client may not have is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_send_exactly_the_scopes_given() {
    let stub = Stub::start(Case::Honest).await;
    let args = |scopes: Option<&str>| {
        let mut args = stub_args(&stub.issuer, "client-credentials", "false");
        if let Some(scopes) = scopes {
            args.extend(["--scopes".to_owned(), scopes.to_owned()]);
        }
        Run::new(&args)
            .interactive(false)
            .env("AUTHPLUG_OIDC_CLIENT_SECRET", "stub-secret")
    };
    args(None).go().await.expect("client credentials");
    assert_eq!(stub.last_token_form().get("scope"), None, "no scope sent");
    args(Some("api.read,api.write"))
        .go()
        .await
        .expect("client credentials");
    assert_eq!(
        stub.last_token_form().get("scope").map(String::as_str),
        Some("api.read api.write")
    );

    let refusal = args(Some("api.read,bogus")).go_refused().await;
    refusal.assert_clean("refused the requested scopes (api.read bogus) (HTTP 400: invalid_scope");
}

/// A 5xx is the provider's trouble: nothing changed, try later. Its body,
/// token-shaped here, is never quoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_is_temporary() {
    let stub_500 = Stub::start(Case::TokenServerError).await;
    let refusal = Run::new(&stub_args(&stub_500.issuer, "browser", CURL_BROWSER))
        .go_refused()
        .await;
    let message =
        refusal.assert_clean("the provider has a temporary problem (HTTP 500, body: \"(JSON that is not an OAuth error response)\"); nothing was changed, try again later");
    assert!(!message.contains("stub-access-token"), "{message}");
}

/// The provider down: its host named once, the cause once, no browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_named_once() {
    let stub = Stub::start(Case::Honest).await;
    let first = Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .go()
        .await
        .expect("a login");
    let issuer = stub.issuer.clone();
    let host = issuer.trim_start_matches("http://").to_owned();
    drop(stub);
    let forbidden = ForbiddenBrowser::new();
    let refusal = Run::new(&stub_args(&issuer, "browser", &forbidden.command))
        .state(&first.state)
        .reason(Reason::Rejected)
        .go_refused()
        .await;
    let message = refusal.assert_clean(&format!(
        "refreshing the token: cannot reach the provider at {host}: Connection refused"
    ));
    assert_eq!(message.matches(&host).count(), 1, "{message}");
    forbidden.assert_unused();
}

/// Keycloak's and Entra ID's extra members, `expires_in` as a string,
/// `token_type` in capitals, JSON labelled text/plain: all a token, and
/// the access token's lifetime still known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_harmless_token_responses_are_accepted() {
    let idp = start(
        r#"{"bend":{"expiresInString":true,"tokenTypeCase":"BEARER","extraMembers":true,"contentType":"text/plain"}}"#,
    );
    let driver = LoggedDriver::http(&[]);
    let first = logged_in(&idp, &driver).await;
    assert_eq!(jwt_claims(&token_text(&first))["sub"], "alice");
    let expires_at = state_json(&first.state)["access_token"]["expires_at"]
        .as_i64()
        .expect("the access token's expiry, from a string expires_in");
    assert!((expires_at - unix_now() - 3600).abs() < 60, "{expires_at}");
    let forbidden = ForbiddenBrowser::new();
    Run::new(&dev_args(&idp.issuer, &forbidden.command))
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a refresh with the same quirks");
    forbidden.assert_unused();
}

async fn quirk_logs_in(quirk: Quirk) -> serde_json::Value {
    let stub = Stub::start(Case::Quirk(quirk)).await;
    let output = Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .go()
        .await
        .unwrap_or_else(|e| panic!("{quirk:?}: {e}"));
    let claims = jwt_claims(&token_text(&output));
    assert_eq!(claims["sub"], "alice");
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_booleans_and_an_rfc3339_updated_at_are_accepted() {
    let claims = quirk_logs_in(Quirk::StringClaims).await;
    assert_eq!(claims["email_verified"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_provider_claims_and_2000_groups_are_accepted() {
    let claims = quirk_logs_in(Quirk::BigAndNestedClaims).await;
    assert_eq!(claims["groups"].as_array().map(Vec::len), Some(2000));
}

/// An access token whose lifetime is only its JWT `exp`, sent as a numeric
/// string, with no `expires_in`: the plugin reports that `exp` on fd 4
/// (PROTOCOL.md rule 10), read by the one parser the broker uses too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_tokens_string_exp_is_its_reported_expiry() {
    let stub = Stub::start(Case::Quirk(Quirk::StringExpAccessToken)).await;
    let mut args = stub_args(&stub.issuer, "browser", CURL_BROWSER);
    args.extend(["--token".into(), "access".into()]);
    let output = Run::new(&args).go().await.expect("a login");
    let claims = jwt_claims(&token_text(&output));
    let exp: u64 = claims["exp"]
        .as_str()
        .expect("a string exp")
        .parse()
        .expect("digits");
    let expected = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp);
    assert_eq!(output.reported_expiry, Some(expected));
    assert_eq!(output.expires_at, Some(expected));
    assert_eq!(
        authplug_broker::jwt_expiry(output.token.as_bytes()),
        Some(expected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractional_numeric_dates_are_accepted() {
    quirk_logs_in(Quirk::FractionalTimes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_without_kid_is_checked_against_the_one_key() {
    quirk_logs_in(Quirk::NoKid).await;
    // And it still has to be signed by that key.
    let stub = Stub::start(Case::NoKidUnknownKey).await;
    let refusal = Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .go_refused()
        .await;
    refusal.assert_clean("ID token is");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_without_alg_or_use_and_tokens_without_typ_are_accepted() {
    quirk_logs_in(Quirk::BareJwks).await;
    quirk_logs_in(Quirk::NoTyp).await;
}

/// OIDC Core §12.2: a refreshed ID token need not carry a nonce, but one it
/// carries must be the login's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_id_token_with_another_nonce_is_refused() {
    let stub = Stub::start(Case::Honest).await;
    let args = stub_args(&stub.issuer, "browser", CURL_BROWSER);
    let first = Run::new(&args).go().await.expect("a login");
    assert!(state_json(&first.state)["login_nonce"].is_string());
    stub.set_refresh(Refresh::WrongNonce);
    let (message, kept) = Run::new(&args)
        .state(&first.state)
        .reason(Reason::Rejected)
        .interactive(false)
        .go_failed_keeping_state()
        .await;
    assert!(
        message.contains("its nonce is not the one of the login it refreshes"),
        "{message}"
    );
    // The honest refresh that follows uses the rotated refresh token.
    stub.set_refresh(Refresh::Honest);
    let output = Run::new(&args)
        .state(&kept)
        .reason(Reason::Rejected)
        .interactive(false)
        .go()
        .await
        .expect("the kept state refreshes");
    assert_eq!(
        stub.last_token_form()["refresh_token"],
        "stub-refresh-token-1"
    );
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
}

/// The device flow sends the user to its verification URI: plain http on
/// another host, with an https issuer, is refused before the code is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_device_verification_uri_is_refused() {
    let tls = TlsStub::start(Case::DeviceHttpVerificationUri).await;
    let refusal = Run::new(&stub_args(&tls.issuer, "device", "false"))
        .args(&["--ca-file", &tls.ca_file.display().to_string()])
        .go_refused()
        .await;
    let message = refusal.assert_clean(
        "the provider gives its verification_uri as http://login.stub.invalid/device-login, which is not https",
    );
    assert!(!message.contains("ABCD-EFGH"), "{message}");
}

/// An issuer typed without (or with) the provider's trailing slash: every
/// token would be refused, so the run stops at discovery and says exactly
/// what to type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_differs_by_a_slash_gets_the_exact_value() {
    let stub = Stub::start(Case::Honest).await;
    let typed = format!("{}/", stub.issuer);
    let refusal = Run::new(&stub_args(&typed, "browser", CURL_BROWSER))
        .go_refused()
        .await;
    refusal.assert_clean(&format!(
        "differ only in the trailing slash: use --issuer {} exactly",
        stub.issuer
    ));
    assert_eq!(stub.token_hits(), 0);
}

/// Providers that compare the loopback redirect's port (against RFC 8252
/// §7.3) get the one registered, with `--listen 127.0.0.1:PORT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_with_a_fixed_port_puts_it_in_the_redirect_uri() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stub = Stub::start(Case::Honest).await;
    Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .args(&["--listen", &format!("127.0.0.1:{port}")])
        .go()
        .await
        .expect("a login");
    assert_eq!(
        stub.last_authorize()["redirect_uri"],
        format!("http://127.0.0.1:{port}/callback")
    );
}

/// Auth0's `audience` and Google's `access_type=offline` + `prompt=consent`
/// reach the authorization request; `--resource` stays RFC 8707's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_and_auth_params_reach_the_authorization_request() {
    let stub = Stub::start(Case::Honest).await;
    Run::new(&stub_args(&stub.issuer, "browser", CURL_BROWSER))
        .args(&[
            "--audience",
            "https://api.example",
            "--auth-param",
            "access_type=offline",
            "--auth-param",
            "prompt=consent",
        ])
        .go()
        .await
        .expect("a login");
    let query = stub.last_authorize();
    assert_eq!(query["audience"], "https://api.example");
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query.get("resource"), None);
    assert_eq!(query["client_id"], STUB_CLIENT);
}
