//! An https issuer: the stub provider behind a TLS front on 127.0.0.1 with a
//! self-signed certificate made in the test (oidc_support/tls.rs).
//! `--ca-file` adds it as a trust root; and whatever endpoints discovery
//! lists must be https too, or nothing is sent to them.

mod oidc_support;

use oidc_support::stub::Case;
use oidc_support::tls::TlsStub;
use oidc_support::{jwt_claims, stub_args, token_text, ForbiddenBrowser, Run};

fn args(tls: &TlsStub, flow: &str, browser: &str) -> Vec<String> {
    stub_args(&tls.issuer, flow, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_adds_a_trust_root() {
    let tls = TlsStub::start(Case::Honest).await;
    // The test's "browser" trusts the same certificate.
    let args = args(&tls, "browser", &tls.curl());

    let refusal = Run::new(&args).go_refused().await;
    let message = refusal.assert_clean("discovery at https://127.0.0.1");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(tls.stub.token_hits(), 0);

    let output = Run::new(&args)
        .arg("--ca-file")
        .arg(tls.ca_file.display().to_string())
        .go()
        .await
        .expect("a login once the certificate is trusted");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    assert_eq!(tls.stub.token_hits(), 1);
}

/// A company CA installed in the system's trust store, as a TLS-inspecting
/// proxy or an internal provider needs: found with no flag, as curl and
/// kubelogin find it. The store is pointed at the way OpenSSL's
/// conventions allow, `SSL_CERT_FILE` (a bundle) or `SSL_CERT_DIR` (a
/// directory of certificates), so the test needs no root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_in_the_systems_trust_store_is_trusted_without_a_flag() {
    let tls = TlsStub::start(Case::Honest).await;
    let args = args(&tls, "browser", &tls.curl());
    let output = Run::new(&args)
        .env("SSL_CERT_FILE", tls.ca_file.display().to_string())
        .go()
        .await
        .expect("a login with the CA in the trust store's bundle");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");

    let store = tempfile::tempdir().unwrap();
    std::fs::copy(&tls.ca_file, store.path().join("company-ca.pem")).unwrap();
    Run::new(&args)
        .env("SSL_CERT_DIR", store.path().display().to_string())
        .go()
        .await
        .expect("a login with the CA in the trust store's directory");
    assert_eq!(tls.stub.token_hits(), 2);
}

/// The issuer is https but its discovery document sends one endpoint to
/// the stub's plain-http port (which answers, so without the check the
/// login would go through in the clear): refused before anything is sent
/// there or a browser is opened.
async fn plain_http_endpoint_is_refused(endpoint: &'static str, flow: &str) {
    let tls = TlsStub::start(Case::PlainHttpEndpoint(endpoint)).await;
    let forbidden = ForbiddenBrowser::new();
    let refusal = Run::new(&args(&tls, flow, &forbidden.command))
        .arg("--ca-file")
        .arg(tls.ca_file.display().to_string())
        .go_refused()
        .await;
    let message = refusal.assert_clean(&format!(
        "gives its {endpoint} as http://{}/",
        tls.stub.plain_addr
    ));
    assert!(message.contains("which is not https"), "{message}");
    forbidden.assert_unused();
    assert_eq!(tls.stub.token_hits(), 0, "a token request went out");
    assert_eq!(
        tls.stub.plain_http_hits(),
        0,
        "a request went to the http endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_token_endpoint_is_refused() {
    plain_http_endpoint_is_refused("token_endpoint", "browser").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_authorization_endpoint_is_refused() {
    plain_http_endpoint_is_refused("authorization_endpoint", "browser").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_jwks_uri_is_refused() {
    plain_http_endpoint_is_refused("jwks_uri", "browser").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_device_endpoint_is_refused() {
    plain_http_endpoint_is_refused("device_authorization_endpoint", "device").await;
}
