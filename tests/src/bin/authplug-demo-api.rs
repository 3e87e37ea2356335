//! The demo's API: a resource server on 127.0.0.1 that accepts a bearer JWT
//! from one issuer for one audience (see `authplug_tests::resource_server`).
//!
//! Prints `LISTEN http://127.0.0.1:PORT` on stdout when ready; exits when its
//! stdin closes or on SIGTERM/SIGINT, so it never outlives whoever started it.

use clap::Parser;

use authplug_tests::resource_server::ResourceServer;

/// A resource server for the authplug demo: `GET /whoami` answers the
/// verified claims of the bearer token, or 401; `POST /revoke` refuses the
/// bearer token from then on.
#[derive(Parser)]
#[command(name = "authplug-demo-api")]
struct Args {
    /// The issuer whose tokens are accepted (keys from its discovery document).
    #[arg(long)]
    issuer: String,
    /// The `aud` a token must carry (the client id, for an ID token).
    #[arg(long)]
    audience: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let served = async {
        let server = ResourceServer::new(&args.issuer, &args.audience).await?;
        server.serve().await
    };
    let url = match served.await {
        Ok(url) => url,
        Err(why) => {
            eprintln!("authplug-demo-api: {why}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("LISTEN {url}");
    if let Err(why) = authplug_tests::until_stdin_closes_or_signalled().await {
        eprintln!("authplug-demo-api: {why}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
