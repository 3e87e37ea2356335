//! authplug-oidc refuses flags that would make it unsafe or make it crash:
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
        "--login-timeout",
        "10",
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
