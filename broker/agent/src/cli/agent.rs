//! `authplug agent`: the broker daemon for one user.

use std::path::PathBuf;
use std::process::ExitCode;

use authplug_agent::config::{ConfigFile, Profiles};
use authplug_agent::{paths, server};

use super::fail;
use super::socket::SocketArg;

/// Keep plugin tokens in memory and serve them on a unix socket
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Profiles file [default: $XDG_CONFIG_HOME/authplug/config.toml]
    #[arg(long, env = "AUTHPLUG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A profile from the command line, on top of the file's (repeatable)
    #[arg(long = "profile", value_name = "NAME=COMMANDLINE")]
    pub profiles: Vec<String>,
}

pub fn run(args: AgentArgs) -> ExitCode {
    let socket = match args.socket.path() {
        Ok(socket) => socket,
        Err(message) => return fail(message),
    };
    let (config_path, required) = match args.config {
        Some(path) => (path, true),
        None => match paths::default_config() {
            Ok(path) => (path, false),
            Err(error) => return fail(error),
        },
    };
    let profiles = match ConfigFile::load(&config_path, required)
        .and_then(|file| Profiles::build(&file, &args.profiles))
    {
        Ok(profiles) => profiles,
        Err(error) => return fail(error),
    };
    if profiles.is_empty() {
        tracing::warn!(config = %config_path.display(), "no profiles configured; every token request will fail until the agent is restarted with some");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the async runtime: {error}")),
    };
    match runtime.block_on(server::run_agent(&socket, profiles)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ server::AgentError::AlreadyRunning(_)) => {
            fail(error);
            ExitCode::from(server::EXIT_ALREADY_RUNNING as u8)
        }
        Err(error) => fail(error),
    }
}
