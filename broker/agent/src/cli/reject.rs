//! `authplug reject`: report a token a server refused (read from stdin), or,
//! with `--current`, whatever token the agent holds.

use std::io::Read;
use std::process::ExitCode;

use authplug_agent::client::{Client, ClientError};
use authplug_agent::wire::WireToken;
use zeroize::Zeroizing;

use super::fail;
use super::shared_args::{ProfileArg, SocketArg};

/// Report that a server refused a token (read from stdin, or the one the
/// agent holds with --current); the next `authplug token` runs the plugin
/// again
#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub target: ProfileArg,
    /// Reject whatever token the agent holds for the profile, without
    /// reading one from stdin (after a 401 from a tool such as kubectl)
    #[arg(long)]
    pub current: bool,
    /// The server's `WWW-Authenticate` value, for the plugin's next run
    /// (`AUTHPLUG_CHALLENGE`): a 403 `insufficient_scope` names the scopes
    /// it wants, and authplug-oidc then logs in asking for them
    #[arg(long, value_name = "WWW-AUTHENTICATE")]
    pub challenge: Option<String>,
}

pub fn run(args: RejectArgs) -> ExitCode {
    if let Some(challenge) = &args.challenge {
        if !authplug_protocol::challenge::usable(challenge) {
            return fail(format!(
                "--challenge must be a WWW-Authenticate value: visible ASCII and spaces, at most {} bytes",
                authplug_protocol::challenge::CHALLENGE_LIMIT
            ));
        }
    }
    let socket = match args.socket.path() {
        Ok(socket) => socket,
        Err(message) => return fail(message),
    };
    if args.current {
        return send(&socket, |client| {
            client.reject_current(args.target.profile, args.challenge)
        });
    }
    let mut input = Zeroizing::new(String::new());
    let limit = authplug_agent::wire::MAX_LINE as u64;
    if let Err(error) = std::io::stdin()
        .lock()
        .take(limit)
        .read_to_string(&mut input)
    {
        return fail(format!(
            "cannot read the rejected token from stdin: {error}"
        ));
    }
    // As `authplug token` printed it: one trailing newline.
    let token = input.strip_suffix('\n').unwrap_or(&input);
    let token = token.strip_suffix('\r').unwrap_or(token);
    if token.is_empty() {
        return fail("no token on stdin: pipe in the token the server refused, e.g. `authplug token | authplug reject`");
    }
    let token = WireToken::new(token.to_owned());
    send(&socket, |client| {
        client.reject(args.target.profile, token, args.challenge)
    })
}

fn send(
    socket: &std::path::Path,
    reject: impl FnOnce(&mut Client) -> Result<bool, ClientError>,
) -> ExitCode {
    // No agent means no cached token to clear: nothing to do, and a script
    // reporting a 401 should not fail for it.
    let mut client = match Client::connect(socket) {
        Ok(client) => client,
        Err(ClientError::NotRunning(_)) => {
            tracing::info!("no agent is running, so no token is cached; nothing to reject");
            return ExitCode::SUCCESS;
        }
        Err(error) => return super::exit::fail(error.kind(), error),
    };
    match reject(&mut client) {
        Ok(cleared) => {
            if cleared {
                tracing::info!("token cleared; the next `authplug token` runs the plugin");
            } else {
                tracing::info!("that token is no longer cached; nothing to clear");
            }
            ExitCode::SUCCESS
        }
        Err(error) => super::exit::fail(error.kind(), error),
    }
}
