//! `authplug logout`: forget a profile's login (or every profile's), after
//! its plugin has revoked what it could (PROTOCOL.md rule 1, `logout`).

use std::process::ExitCode;

use authplug_agent::client::{Client, ClientError};

use super::fail;
use super::shared_args::{ProfileArg, SocketArg};

/// Log out: the plugin revokes what it holds at its provider (never opening
/// a browser), then the agent forgets the token and the state
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub target: ProfileArg,
    /// Every profile of the agent
    #[arg(long, conflicts_with = "profile")]
    pub all: bool,
}

pub fn run(args: LogoutArgs) -> ExitCode {
    let socket = match args.socket.path() {
        Ok(socket) => socket,
        Err(message) => return fail(message),
    };
    let mut client = match Client::connect(&socket) {
        Ok(client) => client,
        // The agent keeps logins in memory only: none runs, none is held.
        Err(ClientError::NotRunning(_)) => {
            say_on_stderr!("authplug: no agent is running, so no login is held; nothing to do");
            return ExitCode::SUCCESS;
        }
        Err(error) => return super::exit::fail(error.kind(), error),
    };
    let profiles: Vec<Option<String>> = if args.all {
        match client.status() {
            Ok(profiles) => profiles
                .into_iter()
                .map(|profile| Some(profile.name))
                .collect(),
            Err(error) => return super::exit::fail(error.kind(), error),
        }
    } else {
        vec![args.target.profile]
    };
    let mut status = ExitCode::SUCCESS;
    for profile in profiles {
        let shown = profile
            .as_deref()
            .unwrap_or("the default profile")
            .to_owned();
        match client.logout(profile, |line| say_on_stderr!("{line}")) {
            Ok(answer) => match (answer.logged_out, answer.cleanup_error) {
                (_, Some(error)) => say_on_stderr!(
                    "authplug: {shown}: logged out here, but the plugin could not clean up at the provider ({error}); what it held there stays valid until it expires"
                ),
                (false, None) => say_on_stderr!("authplug: {shown}: not logged in"),
                (true, None) => say_on_stderr!("authplug: {shown}: logged out"),
            },
            Err(error) => status = super::exit::fail(error.kind(), format!("{shown}: {error}")),
        }
    }
    status
}
