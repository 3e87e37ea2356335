//! `authplug stop`: stop the agent (its tokens and state are forgotten).

use std::process::ExitCode;

use authplug_broker::agent::client::{Client, ClientError};
use authplug_broker::agent::wire::Op;

use super::fail;
use super::socket::SocketArg;

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
    let result = Client::connect(&socket).and_then(|mut client| client.request(Op::Stop, |_| {}));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(ClientError::NotRunning(_)) => {
            eprintln!("authplug: no agent is running on {}", socket.display());
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}
