//! authplug-oidc refuses flags that would make it unsafe or make it crash
//! (time arithmetic overflowing):
//! exit code 2 with a message naming the flag, before any network access,
//! with nothing on stdout or fd 3. Each case runs against the stub
//! provider, where the plugin would otherwise log in (or panic).

mod oidc_support;

use oidc_support::stub::{Case, Stub};
use oidc_support::Run;

async fn refused_flags(flags: &[&str], needle: &str) {
    let stub = Stub::start(Case::Honest).await;
    let refusal = Run::new(&[
        "--issuer",
        &stub.issuer,
        "--client-id",
        "stub-client",
        "--flow",
        "browser",
        "--browser-command",
        "curl -sS -L -o /dev/null",
    ])
    .args(flags)
    .go_refused()
    .await;
    refusal.assert_exit(2, needle);
    assert_eq!(stub.discovery_hits(), 0, "the provider was contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_on_all_ipv4_addresses_is_refused() {
    refused_flags(
        &["--listen", "0.0.0.0:0"],
        "--listen 0.0.0.0:0 is not a loopback address",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_on_all_ipv6_addresses_is_refused() {
    refused_flags(
        &["--listen", "[::]:0"],
        "--listen [::]:0 is not a loopback address",
    )
    .await;
}

/// Without the check, chrono panics when the ID token's iat is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_skew_is_refused() {
    refused_flags(
        &["--skew", "18446744073709551615"],
        "--skew 18446744073709551615 is out of range: give between 0 and 86400 seconds",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_or_huge_login_timeout_is_refused() {
    refused_flags(
        &["--login-timeout", "0"],
        "--login-timeout 0 is out of range: give between 1 and 86400 seconds",
    )
    .await;
    refused_flags(
        &["--login-timeout", "18446744073709551615"],
        "--login-timeout 18446744073709551615 is out of range",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_or_huge_http_timeout_is_refused() {
    refused_flags(
        &["--http-timeout", "0"],
        "--http-timeout 0 is out of range: give between 1 and 3600 seconds",
    )
    .await;
    refused_flags(
        &["--http-timeout", "18446744073709551615"],
        "--http-timeout 18446744073709551615 is out of range",
    )
    .await;
}

/// The same checks apply to the environment variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_skew_from_the_environment_is_refused() {
    let stub = Stub::start(Case::Honest).await;
    let refusal = Run::new(&["--issuer", &stub.issuer, "--client-id", "stub-client"])
        .env("AUTHPLUG_OIDC_SKEW", "99999999999")
        .go_refused()
        .await;
    refusal.assert_exit(2, "--skew 99999999999 is out of range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_param_may_not_replace_what_the_plugin_sets() {
    refused_flags(
        &["--auth-param", "state=mine"],
        "--auth-param state=... would replace a parameter authplug-oidc sets itself",
    )
    .await;
    refused_flags(
        &["--auth-param", "scope=openid"],
        "would replace a parameter authplug-oidc sets itself; use --scopes",
    )
    .await;
    refused_flags(&["--auth-param", "prompt"], "is not KEY=VALUE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_with_a_query_or_a_fragment_is_refused() {
    let stub = Stub::start(Case::Honest).await;
    for issuer in [
        format!("{}?tenant=a", stub.issuer),
        format!("{}#x", stub.issuer),
    ] {
        let refusal = Run::new(&[
            "--issuer",
            &issuer,
            "--client-id",
            "stub-client",
            "--flow",
            "browser",
        ])
        .go_refused()
        .await;
        refusal.assert_exit(2, "has a query or a fragment, which an issuer never has");
    }
    assert_eq!(stub.discovery_hits(), 0, "the provider was contacted");
}
