//! `authplug stop`: stop the agent (its tokens and state are forgotten).

use std::process::ExitCode;
use std::time::Duration;

use authplug_agent::client::{self, Client, ClientError};

use super::fail;
use super::shared_args::SocketArg;

/// How long `stop` waits for the agent to let go of its socket and lock.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Stop the agent; it forgets every token and state it held
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub socket: SocketArg,
}

pub fn run(args: StopArgs) -> ExitCode {
    let socket = match args.socket.path() {
        Ok(socket) => socket,
        Err(message) => return fail(message),
    };
    let result = Client::connect(&socket)
        .and_then(|mut client| client.stop())
        // So that `authplug stop && authplug token` starts a new agent
        // rather than meet the old one on its way out.
        .and_then(|_| client::wait_until_stopped(&socket, STOP_TIMEOUT));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ClientError::NotRunning(_)) => {
            say_on_stderr!("authplug: no agent is running on {}", socket.display());
            ExitCode::SUCCESS
        }
        Err(error) => super::exit::fail(error.kind(), error),
    }
}
