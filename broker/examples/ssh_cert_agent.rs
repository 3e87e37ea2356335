//! An SSH certificate agent built on the broker library: the first thing a
//! daemon author should read.
//!
//! It keeps an ed25519 key in memory, gets a token from a credential plugin
//! through an [`authplug_broker::Broker`], trades the token and the public key
//! for a short-lived OpenSSH user certificate at a CA, and loads key and
//! certificate into the user's running `ssh-agent` (`SSH_AUTH_SOCK`) through
//! the agent protocol: nothing touches the disk. It renews the certificate
//! before it expires, and when the CA refuses the token (401) it rejects that
//! token and tries once more with a new one: the broker's retry helper.
//!
//! ```text
//! ssh_cert_agent serve --plugin 'authplug-oidc --issuer … --client-id …' \
//!     --ca http://ca.example/ --control ~/.ssh/cert-agent.sock &
//! # ~/.ssh/config: get a certificate, if need be, before connecting:
//! #   Match host *.example.com exec "ssh_cert_agent ensure --control ~/.ssh/cert-agent.sock"
//! ```
//!
//! `ensure` asks the daemon, on its control socket, to make sure a valid
//! certificate is loaded; any number of them at once share one certificate
//! request and one plugin run (the broker's single flight). The CA protocol
//! is the reference CA's (`tests/src/cert_authority.rs`): `POST
//! {ca}/certificate` with `{"public_key": …}` and the bearer token, answered
//! with `{"certificate": …}`. A real CA will differ in that one function.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authplug_broker::{
    Broker, BrokerOptions, Failure, PluginCommand, TokenRequest, WithTokenError,
};
use clap::Parser;
use ssh_agent_lib::agent::Session;
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, KeyConstraint, PrivateCredential, PrivateKeyData,
    PublicCredential,
};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, Certificate, PrivateKey};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

#[derive(Parser)]
#[command(name = "ssh_cert_agent")]
enum Command {
    /// Run the daemon: keep a certificate loaded in ssh-agent.
    Serve {
        /// The credential plugin's command line (shell words).
        #[arg(long)]
        plugin: String,
        /// The CA's base URL.
        #[arg(long)]
        ca: String,
        /// Where `ensure` finds this daemon.
        #[arg(long)]
        control: PathBuf,
        /// Renew this many seconds before the certificate expires.
        #[arg(long, default_value_t = 60)]
        renew_before: u64,
    },
    /// Make sure a valid certificate is loaded (for ssh's `Match exec`).
    Ensure {
        #[arg(long)]
        control: PathBuf,
    },
}

/// One daemon: the broker, the key, and the certificate now loaded.
struct CertAgent {
    broker: Broker,
    http: reqwest::Client,
    ca: String,
    /// Zeroized when dropped (ssh-key wipes private keys).
    key: PrivateKey,
    renew_before: Duration,
    /// Held while a certificate is being obtained, so concurrent `ensure`s
    /// wait for that one instead of each asking the CA.
    loaded: Mutex<Option<Certificate>>,
}

impl CertAgent {
    /// Loads a certificate unless one is loaded that is valid for longer
    /// than `renew_before`. `interactive`: may the plugin open a browser?
    async fn ensure(&self, interactive: bool) -> Result<Certificate, String> {
        let mut loaded = self.loaded.lock().await;
        if let Some(certificate) = loaded.as_ref() {
            // Not one that could expire during the ssh handshake.
            if remaining(certificate) > self.renew_before.max(MIN_REMAINING) {
                // Still there? `ssh-add -D` or a restarted ssh-agent loses it.
                if !self.ssh_agent_holds(certificate).await? {
                    self.load_into_ssh_agent(certificate).await?;
                    eprintln!(
                        "ssh_cert_agent: ssh-agent had lost certificate {}; loaded it again",
                        certificate.serial()
                    );
                }
                return Ok(certificate.clone());
            }
        }
        // The retry helper: on Failure::Unauthorized it rejects the token
        // (compare-and-clear), so the broker runs the plugin again with
        // AUTHPLUG_REASON=rejected, and calls us once more with the new token.
        let request = TokenRequest::new().interactive(interactive);
        let certificate = self
            .broker
            .with_token_with(request, |token| self.request_certificate(token))
            .await
            .map_err(|error| match error {
                WithTokenError::Token(error) => format!("no token: {}", error.summary()),
                WithTokenError::Unauthorized(why) => {
                    format!("the CA refused a fresh token too: {why}")
                }
                WithTokenError::Other(why) => why,
                other => other.to_string(),
            })?;
        self.load_into_ssh_agent(&certificate).await?;
        eprintln!(
            "ssh_cert_agent: loaded certificate {} for {:?}, valid for {} s (plugin runs so far: {})",
            certificate.serial(),
            certificate.valid_principals(),
            remaining(&certificate).as_secs(),
            self.broker.status().runs,
        );
        *loaded = Some(certificate.clone());
        Ok(certificate)
    }

    /// Asks the CA to sign our public key. A 401 is the one answer a new
    /// token may cure: everything else is final.
    async fn request_certificate(
        &self,
        token: authplug_broker::Token,
    ) -> Result<Certificate, Failure<String>> {
        let token = token
            .to_str()
            .map_err(|_| Failure::Other("the plugin's token is not text".to_owned()))?;
        let public_key = self
            .key
            .public_key()
            .to_openssh()
            .map_err(|e| Failure::Other(e.to_string()))?;
        let body = serde_json::json!({ "public_key": public_key }).to_string();
        let response = self
            .http
            .post(format!("{}/certificate", self.ca.trim_end_matches('/')))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Other(format!("cannot reach the CA: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::Other(format!("the CA's answer broke off: {e}")))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            eprintln!("ssh_cert_agent: the CA refused the token; asking the plugin for a new one");
            return Err(Failure::Unauthorized(format!("HTTP 401: {}", text.trim())));
        }
        if !status.is_success() {
            return Err(Failure::Other(format!(
                "the CA said {status}: {}",
                text.trim()
            )));
        }
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Failure::Other(format!("the CA's answer is not JSON: {e}")))?;
        let line = answer["certificate"]
            .as_str()
            .ok_or_else(|| Failure::Other("the CA's answer has no certificate".to_owned()))?;
        let certificate = Certificate::from_openssh(line)
            .map_err(|e| Failure::Other(format!("the CA's certificate does not parse: {e}")))?;
        if certificate.public_key() != self.key.public_key().key_data() {
            return Err(Failure::Other("the CA certified another key".to_owned()));
        }
        Ok(certificate)
    }

    /// Does ssh-agent hold `certificate`?
    async fn ssh_agent_holds(&self, certificate: &Certificate) -> Result<bool, String> {
        let identities = ssh_agent()
            .await?
            .request_identities()
            .await
            .map_err(|e| format!("ssh-agent did not list its keys: {e}"))?;
        Ok(identities.iter().any(|identity| {
            matches!(&identity.credential, PublicCredential::Cert(held) if **held == *certificate)
        }))
    }

    /// Adds key + certificate to ssh-agent, to be dropped by ssh-agent itself
    /// when the certificate expires. The previous one stays until then too:
    /// an ssh that listed it a moment ago may still ask ssh-agent to sign
    /// with it (removing it here failed such an ssh, under load).
    async fn load_into_ssh_agent(&self, certificate: &Certificate) -> Result<(), String> {
        let mut agent = ssh_agent().await?;
        let keypair = self
            .key
            .key_data()
            .ed25519()
            .ok_or("the key is not ed25519")?
            .clone();
        // Whole seconds up to `valid_before`, rounded up: ssh-agent must not
        // drop the certificate while sshd would still take it.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let lifetime =
            u32::try_from(certificate.valid_before().saturating_sub(now)).unwrap_or(u32::MAX);
        let credential = PrivateCredential::Cert {
            algorithm: Algorithm::Ed25519,
            certificate: Box::new(certificate.clone()),
            privkey: PrivateKeyData::Ed25519(keypair),
            comment: format!("ssh_cert_agent certificate {}", certificate.serial()),
        };
        agent
            .add_identity_constrained(AddIdentityConstrained {
                identity: AddIdentity { credential },
                constraints: vec![KeyConstraint::Lifetime(lifetime.max(1))],
            })
            .await
            .map_err(|e| format!("ssh-agent refused the certificate: {e}"))?;
        Ok(())
    }

    /// Renews ahead of expiry, for as long as the daemon runs. Without a
    /// terminal or a user watching, it never lets the plugin open a browser:
    /// the next `ensure` does that.
    async fn renew_forever(self: Arc<Self>) {
        loop {
            let next = match self.loaded.lock().await.as_ref() {
                Some(certificate) => {
                    remaining(certificate).saturating_sub(self.renew_before.max(MIN_REMAINING))
                }
                None => Duration::from_secs(1),
            };
            tokio::time::sleep(next.max(Duration::from_millis(200))).await;
            if self.loaded.lock().await.is_none() {
                continue;
            }
            if let Err(why) = self.ensure(false).await {
                eprintln!("ssh_cert_agent: renewal failed: {why}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// A certificate with less left than this is renewed before use: it could
/// expire during the ssh handshake.
const MIN_REMAINING: Duration = Duration::from_secs(1);

/// A client of the user's ssh-agent (`SSH_AUTH_SOCK`).
async fn ssh_agent() -> Result<ssh_agent_lib::client::Client<UnixStream>, String> {
    let socket = std::env::var_os("SSH_AUTH_SOCK")
        .ok_or("SSH_AUTH_SOCK is not set: start ssh-agent first")?;
    let stream = UnixStream::connect(&socket).await.map_err(|e| {
        format!(
            "cannot reach ssh-agent at {}: {e}",
            PathBuf::from(&socket).display()
        )
    })?;
    Ok(ssh_agent_lib::client::Client::new(stream))
}

/// How long `certificate` is still valid.
fn remaining(certificate: &Certificate) -> Duration {
    certificate
        .valid_before_time()
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

/// The daemon: answers each line on the control socket with `ok` or
/// `error: …` after an [`CertAgent::ensure`].
async fn serve(agent: Arc<CertAgent>, control: PathBuf) -> Result<(), String> {
    let _ = std::fs::remove_file(&control);
    let listener = UnixListener::bind(&control)
        .map_err(|e| format!("cannot listen on {}: {e}", control.display()))?;
    tokio::spawn(Arc::clone(&agent).renew_forever());
    eprintln!("ssh_cert_agent: listening on {}", control.display());
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match agent.ensure(true).await {
                Ok(_) => "ok\n".to_owned(),
                Err(why) => format!("error: {why}\n"),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}

/// `ensure`: one request to the daemon; exit 0 when a certificate is loaded.
async fn ensure(control: PathBuf) -> Result<(), String> {
    let stream = UnixStream::connect(&control).await.map_err(|e| {
        format!(
            "no ssh_cert_agent at {} ({e}): start `ssh_cert_agent serve`",
            control.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"ensure\n")
        .await
        .map_err(|e| format!("cannot ask the daemon: {e}"))?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(|e| format!("no answer from the daemon: {e}"))?;
    match answer.trim_end() {
        "ok" => Ok(()),
        "" => Err("the daemon hung up without an answer".to_owned()),
        other => Err(other.strip_prefix("error: ").unwrap_or(other).to_owned()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The key and the tokens live in this process's memory: keep them out
    // of core dumps.
    if let Err(what) = authplug_protocol::forbid_core_dumps() {
        eprintln!("ssh_cert_agent: could not keep this process out of core dumps: {what}");
    }
    let result = match Command::parse() {
        Command::Serve {
            plugin,
            ca,
            control,
            renew_before,
        } => match (
            PluginCommand::parse(&plugin),
            PrivateKey::random(&mut OsRng, Algorithm::Ed25519),
        ) {
            (Ok(command), Ok(key)) => {
                let agent = Arc::new(CertAgent {
                    broker: Broker::new(command, BrokerOptions::default()),
                    http: reqwest::Client::new(),
                    ca,
                    key,
                    renew_before: Duration::from_secs(renew_before),
                    loaded: Mutex::new(None),
                });
                serve(agent, control).await
            }
            (Err(error), _) => Err(format!("--plugin: {error}")),
            (_, Err(error)) => Err(format!("cannot make a key: {error}")),
        },
        Command::Ensure { control } => ensure(control).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("ssh_cert_agent: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}
