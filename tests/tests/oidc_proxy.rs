//! A corporate network's forward proxy between authplug-oidc and its
//! provider: a real one (Debian's tinyproxy, tests/src/forward_proxy.rs)
//! and the real dev IdP. `HTTP_PROXY`/`HTTPS_PROXY` send the login's and
//! the refresh's requests through it; `NO_PROXY` exempts the hosts it
//! names (here loopback), whose requests then go direct.

mod oidc_support;

use authplug_protocol::Reason;
use authplug_tests::forward_proxy::ForwardProxy;
use oidc_support::{dev_args, jwt_claims, token_text, DevIdp, ForbiddenBrowser, LoggedDriver, Run};

/// A run with the proxy set, and `NO_PROXY` as given (the test's own
/// environment decides nothing).
fn through(run: Run, proxy: &ForwardProxy, no_proxy: &str) -> Run {
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"]
        .into_iter()
        .fold(run, |run, name| run.env(name, proxy.url.clone()))
        .env("NO_PROXY", no_proxy)
        .env("no_proxy", no_proxy)
        .env("ALL_PROXY", "")
        .env("all_proxy", "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_refresh_go_through_the_proxy_and_no_proxy_exempts_loopback() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let proxy = ForwardProxy::start().expect("tinyproxy starts");
    let driver = LoggedDriver::http(&[]);
    let login = through(
        Run::new(&dev_args(&idp.issuer, &driver.command)),
        &proxy,
        "",
    )
    .go()
    .await
    .expect("a login through the proxy");
    assert_eq!(jwt_claims(&token_text(&login))["sub"], "alice");
    let requests = proxy.requests();
    let to_idp = |path: &str| format!("{}{path} ", idp.issuer);
    for path in ["/.well-known/openid-configuration", "/token"] {
        assert!(
            requests.iter().any(|r| r.contains(&to_idp(path))),
            "no {path} through the proxy: {requests:?}"
        );
    }

    // A refresh (the token was refused), through the proxy too. (ID tokens
    // issued in the same second can be byte for byte the same.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let forbidden = ForbiddenBrowser::new();
    let quiet = dev_args(&idp.issuer, &forbidden.command);
    let before = proxy.requests().len();
    let refreshed = through(Run::new(&quiet), &proxy, "")
        .state(&login.state)
        .reason(Reason::Rejected)
        .interactive(false)
        .go()
        .await
        .expect("a refresh through the proxy");
    assert_ne!(refreshed.token, login.token);
    let after: Vec<String> = proxy.requests().split_off(before);
    assert!(
        after
            .iter()
            .any(|r| r.starts_with(&format!("POST {}/token ", idp.issuer))),
        "{after:?}"
    );

    // NO_PROXY names loopback: the same refresh goes direct.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = proxy.requests().len();
    let direct = through(Run::new(&quiet), &proxy, "127.0.0.1,localhost")
        .state(&refreshed.state)
        .reason(Reason::Rejected)
        .interactive(false)
        .go()
        .await
        .expect("a refresh around the proxy");
    assert_ne!(direct.token, refreshed.token);
    assert_eq!(proxy.requests().len(), before, "{:?}", proxy.requests());
    forbidden.assert_unused();
    assert_eq!(driver.logins(), 1);
}
