//! The stub provider behind a TLS front on 127.0.0.1 with a self-signed
//! certificate made in the test: an https issuer without a real CA.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

use super::stub::{Case, Stub};

/// The stub, named by an https issuer, and the certificate to trust it.
pub struct TlsStub {
    pub stub: Arc<Stub>,
    /// `https://127.0.0.1:PORT`, the TLS front.
    pub issuer: String,
    /// The front's certificate (PEM), for `--ca-file` and the test's curl.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsStub {
    pub async fn start(case: Case) -> TlsStub {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("https://{}", front.local_addr().unwrap());
        let stub = Stub::start_as(case, Some(issuer.clone())).await;
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a self-signed certificate");
        tls_front(front, &cert, stub.addr).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.cert.pem()).unwrap();
        TlsStub {
            stub,
            issuer,
            ca_file,
            _dir: dir,
        }
    }

    /// A browser command that trusts the front's certificate.
    pub fn curl(&self) -> String {
        format!(
            "curl -sS -L -o /dev/null --cacert {}",
            self.ca_file.display()
        )
    }
}

/// An https front on 127.0.0.1 for a plain-HTTP `backend`, with a
/// certificate made here: its `https://` URL, and the certificate (PEM)
/// written to `dir/ca.pem` for clients to trust.
pub async fn https_front(
    backend: std::net::SocketAddr,
    dir: &std::path::Path,
) -> (String, PathBuf) {
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", front.local_addr().unwrap());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    tls_front(front, &cert, backend).await;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    (url, ca_file)
}

/// Terminates TLS with `cert` and forwards each connection to `backend`.
pub async fn tls_front(
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
