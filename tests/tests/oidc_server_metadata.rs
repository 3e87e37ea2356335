//! Providers that publish some endpoints only in their RFC 8414
//! authorization server metadata, or nowhere, and device logins that bring
//! no ID token: the real dev IdP, bent to behave so
//! (scripts/dev-idp/README.md, "Bending it").
//!
//! - OIDC Discovery 1.0 defines neither `revocation_endpoint` (RFC 7009,
//!   named in metadata by RFC 8414 §2) nor `device_authorization_endpoint`
//!   (RFC 8628 §4): `metadataOnlyIn8414` lists them only at
//!   `/.well-known/oauth-authorization-server` (RFC 8414 §3.1).
//! - RFC 8628 §3.5 and RFC 6749 §5.1 require no `id_token` in a device
//!   token response: `deviceWithoutIdToken` gives none.

mod oidc_support;

use authplug_protocol::Reason;
use oidc_support::{
    approvers_succeeded, dev_args, device_approve_command, device_run, jwt_claims,
    quiet_refused_refresh, state_json, token_text, DevIdp, ForbiddenBrowser, LoggedDriver, Run,
};

fn start(config: &str) -> DevIdp {
    DevIdp::start(config).expect("the dev IdP starts")
}

/// A logout run's stderr (it must succeed, print nothing and write nothing).
async fn logout(args: &[String], state: &authplug_protocol::State) -> String {
    let done = Run::new(args)
        .state(state)
        .reason(Reason::Logout)
        .interactive(false)
        .go()
        .await
        .unwrap_or_else(|error| panic!("the logout run failed: {error}"));
    assert!(done.token.as_bytes().is_empty() && done.state.is_empty());
    done.stderr_tail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_only_in_rfc_8414_metadata_serve_the_device_flow_and_logout() {
    let idp = start(r#"{"bend":{"metadataOnlyIn8414":true}}"#);
    let forbidden = ForbiddenBrowser::new();
    let (run, approvers) = device_run(&idp, &forbidden.command, Some(device_approve_command(&[])));
    let login = run
        .go()
        .await
        .expect("a device login, its endpoint from RFC 8414");
    assert_eq!(approvers_succeeded(&approvers), 1);
    assert_eq!(jwt_claims(&token_text(&login))["sub"], "alice");
    // Kept with the discovery document, as long.
    let cached = &state_json(&login.state)["provider"]["discovery"];
    assert!(cached["revocation_endpoint"].is_string(), "{cached}");

    // Logout finds the revocation endpoint the same way, and revokes.
    let said = logout(&dev_args(&idp.issuer, &forbidden.command), &login.state).await;
    assert!(said.contains("the refresh token was revoked"), "{said}");
    quiet_refused_refresh(&idp.issuer, &login.state)
        .await
        .assert_clean("refused the refresh token");
    forbidden.assert_unused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_given_by_flag_serve_a_provider_that_lists_them_nowhere_if_as_safe_as_the_issuer()
{
    // Its revocation endpoint works but is listed in neither document.
    let idp = start(r#"{"bend":{"unlisted":["revocation_endpoint"]}}"#);
    let driver = LoggedDriver::http(&[]);
    let login = Run::new(&dev_args(&idp.issuer, &driver.command))
        .go()
        .await
        .expect("a login");
    let forbidden = ForbiddenBrowser::new();
    let unlisted = logout(&dev_args(&idp.issuer, &forbidden.command), &login.state).await;
    assert!(
        unlisted.contains("lists no revocation endpoint")
            && unlisted.contains("stays valid there until it expires")
            && unlisted.contains("--revocation-endpoint"),
        "{unlisted}"
    );
    let mut args = dev_args(&idp.issuer, &forbidden.command);
    args.extend([
        "--revocation-endpoint".to_owned(),
        format!("{}/token/revocation", idp.issuer),
    ]);
    let said = logout(&args, &login.state).await;
    assert!(said.contains("the refresh token was revoked"), "{said}");
    quiet_refused_refresh(&idp.issuer, &login.state)
        .await
        .assert_clean("refused the refresh token");

    // An endpoint less safe than the issuer is refused, and nothing is
    // sent there.
    let mut unsafe_args = dev_args(&idp.issuer, &forbidden.command);
    unsafe_args.extend([
        "--device-endpoint".to_owned(),
        "http://device.example/auth".to_owned(),
    ]);
    unsafe_args[5] = "device".into();
    let refusal = Run::new(&unsafe_args).go_refused().await;
    refusal.assert_clean("--device-endpoint is http://device.example/auth, which is not https");
    forbidden.assert_unused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_login_without_an_id_token_serves_access_tokens_and_gets_an_id_token_by_refresh() {
    let idp = start(r#"{"bend":{"deviceWithoutIdToken":true}}"#);
    let forbidden = ForbiddenBrowser::new();

    // --token access: the access token, as the provider gave it.
    let (run, approvers) = device_run(&idp, &forbidden.command, Some(device_approve_command(&[])));
    let access = run
        .args(&["--token", "access"])
        .go()
        .await
        .expect("an access token from a device login without an ID token");
    assert_eq!(approvers_succeeded(&approvers), 1);
    assert!(state_json(&access.state)["refresh_token"].is_string());
    assert!(access.reported_expiry.is_some());

    // --token id: a refresh brings the ID token the login did not.
    let (run, approvers) = device_run(&idp, &forbidden.command, Some(device_approve_command(&[])));
    let id = run.go().await.expect("an ID token by a refresh");
    assert_eq!(approvers_succeeded(&approvers), 1);
    assert_eq!(jwt_claims(&token_text(&id))["sub"], "alice");
    assert!(
        id.stderr_tail
            .contains("the login gave no ID token; trying a refresh"),
        "{}",
        id.stderr_tail
    );
    forbidden.assert_unused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_login_that_cannot_give_an_id_token_fails_and_hands_its_tokens_back() {
    // Neither the device login nor a refresh gives an ID token.
    let idp = start(r#"{"bend":{"deviceWithoutIdToken":true,"refreshWithoutIdToken":true}}"#);
    let forbidden = ForbiddenBrowser::new();
    let (run, approvers) = device_run(&idp, &forbidden.command, Some(device_approve_command(&[])));
    let (message, state) = run.go_failed_keeping_state().await;
    assert_eq!(approvers_succeeded(&approvers), 1);
    assert!(
        message.contains("device login gave an access token but no ID token")
            && message.contains("use --token access"),
        "{message}"
    );
    assert!(!message.contains("openid"), "no wrong hint: {message}");
    // What it obtained is handed back (PROTOCOL.md rule 4): the next run,
    // asking for the access token, uses it with no new login.
    let held = state_json(&state);
    assert!(held["refresh_token"].is_string(), "{held}");
    let mut args = dev_args(&idp.issuer, &forbidden.command);
    args.extend(["--token".to_owned(), "access".to_owned()]);
    let next = Run::new(&args)
        .state(&state)
        .reason(Reason::Refresh)
        .interactive(false)
        .go()
        .await
        .expect("the access token from the kept state");
    assert!(!next.token.as_bytes().is_empty());
    forbidden.assert_unused();
}
