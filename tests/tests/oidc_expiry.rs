//! authplug-oidc says when every token it hands out expires (PROTOCOL.md
//! rule 10), against the real dev IdP: an ID token by its `exp`, an opaque
//! access token by the token response's `expires_in` (RFC 6749 §5.1),
//! client credentials likewise, and the token it serves from its state as
//! well. Asked with `AUTHPLUG_REASON=expiring` it refreshes, silently, and
//! never hands back the token it holds; an epithet host hears nothing.

mod oidc_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authplug_protocol::Reason;
use oidc_support::{
    client_credentials, dev_args, jwt_claims, state_json, token_text, DevIdp, ForbiddenBrowser,
    LoggedDriver, Run,
};

fn start(config: &str) -> DevIdp {
    DevIdp::start(config).expect("the dev IdP starts")
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// `expiry` lies `lifetime` seconds from the run's start, give or take the
/// run itself (whole seconds, counted from before the request).
fn about_from_now(expiry: Option<SystemTime>, lifetime: u64) -> bool {
    let Some(expiry) = expiry else {
        return false;
    };
    let now = SystemTime::now();
    expiry <= now + Duration::from_secs(lifetime)
        && expiry + Duration::from_secs(10) >= now + Duration::from_secs(lifetime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_reported_by_its_exp_and_so_is_the_one_served_from_the_state() {
    let idp = start("{}");
    let driver = LoggedDriver::http(&[]);
    let login = Run::new(&dev_args(&idp.issuer, &driver.command))
        .go()
        .await
        .expect("a login");
    let exp = jwt_claims(&token_text(&login))["exp"]
        .as_u64()
        .expect("an exp");
    assert_eq!(login.reported_expiry, Some(at(exp)));
    assert_eq!(login.expires_at, Some(at(exp)));

    // Served from the state (reason `refresh`, still valid): the same
    // token, the same expiry, no network needed.
    let forbidden = ForbiddenBrowser::new();
    let cached = Run::new(&dev_args(&idp.issuer, &forbidden.command))
        .state(&login.state)
        .reason(Reason::Refresh)
        .interactive(false)
        .go()
        .await
        .expect("the held token");
    assert_eq!(cached.token, login.token);
    assert_eq!(cached.reported_expiry, Some(at(exp)));
    forbidden.assert_unused();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_access_token_is_reported_by_expires_in() {
    let idp = start(r#"{"ttl":{"accessToken":120}}"#);
    let driver = LoggedDriver::http(&[]);
    let mut args = dev_args(&idp.issuer, &driver.command);
    args.extend(["--token".into(), "access".into()]);
    let login = Run::new(&args).go().await.expect("a login");
    assert!(
        authplug_protocol::jwt_expiry(login.token.as_bytes()).is_none(),
        "opaque"
    );
    assert!(
        about_from_now(login.reported_expiry, 120),
        "{:?}",
        login.reported_expiry
    );
    assert_eq!(login.expires_at, login.reported_expiry);
    assert_eq!(login.info_problem, None);
    assert_eq!(
        state_json(&login.state)["access_token"]["expires_at"].as_u64(),
        login
            .reported_expiry
            .map(authplug_protocol::expiry::unix_seconds)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_reported_by_expires_in() {
    let idp = start(r#"{"ttl":{"accessToken":300}}"#);
    let output = client_credentials(&idp.issuer, "machine-secret")
        .go()
        .await
        .expect("client credentials");
    assert!(
        about_from_now(output.reported_expiry, 300),
        "{:?}",
        output.reported_expiry
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asked_ahead_of_expiry_it_refreshes_silently_and_never_hands_back_the_held_token() {
    let idp = start("{}");
    let driver = LoggedDriver::http(&[]);
    let mut args = dev_args(&idp.issuer, &driver.command);
    args.extend(["--token".into(), "access".into()]);
    let login = Run::new(&args).go().await.expect("a login");
    // The same second can give the same token bytes back.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let forbidden = ForbiddenBrowser::new();
    let mut quiet = dev_args(&idp.issuer, &forbidden.command);
    quiet.extend(["--token".into(), "access".into()]);
    let ahead = Run::new(&quiet)
        .state(&login.state)
        .reason(Reason::Expiring)
        .interactive(false)
        .go()
        .await
        .expect("a refresh ahead of expiry");
    assert_ne!(ahead.token, login.token, "a new token, not the held one");
    assert_ne!(
        state_json(&ahead.state)["refresh_token"],
        state_json(&login.state)["refresh_token"],
        "it refreshed (the dev IdP rotates refresh tokens)"
    );
    assert!(ahead.reported_expiry > login.reported_expiry);
    forbidden.assert_unused();

    // An epithet host offers no fd 4: the plugin runs as before and says
    // nothing.
    let epithet = Run::new(&quiet)
        .state(&ahead.state)
        .epithet_host()
        .go()
        .await
        .expect("a refresh, as an epithet host runs it");
    assert_eq!((epithet.reported_expiry, epithet.expires_at), (None, None));
}
