//! `--ca-file`: the stub provider behind a TLS front on 127.0.0.1 with a
//! self-signed certificate made in the test. Without the certificate as an
//! extra trust root the plugin refuses the provider; with it, it logs in.

mod oidc_support;

use std::sync::Arc;

use oidc_support::stub::{Case, Stub};
use oidc_support::{jwt_claims, token_text, Run};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// Terminates TLS with `cert` and forwards each connection to `backend`.
async fn tls_front(
    listener: TcpListener,
    cert: &rcgen::CertifiedKey,
    backend: std::net::SocketAddr,
) {
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der())
        .expect("a private key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("a server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                if let Ok(mut plain) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_adds_a_trust_root() {
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://{}", front.local_addr().unwrap());
    let stub = Stub::start_as(Case::Honest, Some(issuer.clone())).await;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    tls_front(front, &cert, stub.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    // The test's "browser" trusts the same certificate.
    let browser = format!("curl -sS -L -o /dev/null --cacert {}", ca.display());
    let args = [
        "--issuer",
        &issuer,
        "--client-id",
        "stub-client",
        "--flow",
        "browser",
        "--browser-command",
        &browser,
        "--login-timeout",
        "10",
        "--http-timeout",
        "5",
    ];

    let refusal = Run::new(&args).go_refused().await;
    let message = refusal.assert_clean("discovery at https://127.0.0.1");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(stub.token_hits(), 0);

    let output = Run::new(&args)
        .arg("--ca-file")
        .arg(ca.display().to_string())
        .go()
        .await
        .expect("a login once the certificate is trusted");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    assert_eq!(stub.token_hits(), 1);
}
