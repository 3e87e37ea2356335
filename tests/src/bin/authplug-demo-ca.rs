//! The demo's SSH certificate authority (`scripts/demo --ssh`): the
//! reference CA of `authplug_tests::cert_authority` on 127.0.0.1. It stands
//! in for a real CA and is not one: its key lives in memory and it signs
//! whatever principal the token's claim names.
//!
//! Prints `LISTEN http://127.0.0.1:PORT` on stdout when ready; exits when its
//! stdin closes or on SIGTERM/SIGINT, so it never outlives whoever started it.

use std::time::Duration;

use clap::Parser;

use authplug_tests::cert_authority::CertAuthority;

/// A reference SSH CA for the authplug demo: `POST /certificate` signs a
/// user certificate for a valid bearer token, `GET /ca.pub` is its key.
#[derive(Parser)]
#[command(name = "authplug-demo-ca")]
struct Args {
    /// The issuer whose tokens are accepted (keys from its discovery document).
    #[arg(long)]
    issuer: String,
    /// The `aud` a token must carry (the client id, for an ID token).
    #[arg(long)]
    audience: String,
    /// The claim whose value is the certificate's principal.
    #[arg(long, default_value = "sub")]
    principal_claim: String,
    /// How long a certificate is valid, in seconds.
    #[arg(long, default_value_t = 300)]
    validity: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let served = async {
        let ca = CertAuthority::new(
            &args.issuer,
            &args.audience,
            &args.principal_claim,
            Duration::from_secs(args.validity),
        )
        .await?;
        ca.serve().await
    };
    let url = match served.await {
        Ok(url) => url,
        Err(why) => {
            eprintln!("authplug-demo-ca: {why}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("LISTEN {url}");
    if let Err(why) = authplug_tests::until_stdin_closes_or_signalled().await {
        eprintln!("authplug-demo-ca: {why}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
