//! `authplug token`: print a profile's token, from the agent.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use authplug_agent::client::Client;
use authplug_agent::wire::Op;

use super::fail;
use super::socket::SocketArg;

/// Print a profile's token (starting the agent if none runs)
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// The profile [default: the agent's default profile]
    #[arg(long, short = 'p')]
    pub profile: Option<String>,
    /// Fail instead of letting the plugin open a browser or prompt
    #[arg(long)]
    pub non_interactive: bool,
    /// Start an interactive login even during the cool-down after a failed one
    #[arg(long)]
    pub force: bool,
    /// Fail if no agent is running instead of starting one
    #[arg(long)]
    pub no_autostart: bool,
    /// Profiles file for an agent started by this command
    #[arg(long, env = "AUTHPLUG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: TokenArgs) -> ExitCode {
    let socket = match args.socket.path() {
        Ok(socket) => socket,
        Err(message) => return fail(message),
    };
    let connected = if args.no_autostart {
        Client::connect(&socket)
    } else {
        let mut agent_args: Vec<OsString> = Vec::new();
        if let Some(config) = &args.config {
            // The agent runs from `/`.
            let config = match std::path::absolute(config) {
                Ok(config) => config,
                Err(error) => return fail(format!("cannot resolve --config: {error}")),
            };
            agent_args.push("--config".into());
            agent_args.push(config.into());
        }
        Client::connect_or_start(&socket, &agent_args)
    };
    let mut client = match connected {
        Ok(client) => client,
        Err(error) => return fail(error),
    };
    let op = Op::Token {
        profile: args.profile,
        interactive: !args.non_interactive,
        force: args.force,
    };
    // The plugin's stderr, live: this is where a login URL shows up.
    let answer = client.request(op, |line| say_on_stderr!("{line}"));
    let mut response = match answer {
        Ok(response) => response,
        Err(error) => return fail(error),
    };
    let Some(mut token) = response.token.take() else {
        return fail("the agent answered without a token");
    };
    // Wiped when `token` drops, newline and all.
    token.expose_secret_mut().push('\n');
    let written = std::io::stdout()
        .lock()
        .write_all(token.expose_secret().as_bytes());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!("cannot write the token to stdout: {error}")),
    }
}
