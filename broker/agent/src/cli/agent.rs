//! `authplug agent`: the broker daemon for one user.

use std::path::PathBuf;
use std::process::ExitCode;

use authplug_agent::config::{ConfigFile, Profiles};
use authplug_agent::reload::LiveProfiles;
use authplug_agent::{activation, paths, server};

use super::fail;
use super::shared_args::SocketArg;

/// Keep plugin tokens in memory and serve them on a unix socket
///
/// Runs in the foreground until SIGTERM, SIGINT or `authplug stop`. Under
/// a supervisor with socket activation (systemd's authplug.socket,
/// `LISTEN_FDS`) it serves the socket it is passed, and leaves it in place
/// when it exits: the next client starts it again.
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
    // First, before any file is opened or thread started: a supervisor's
    // socket is fd 3, and its variables must not reach a plugin.
    let activated = match activation::take_listener() {
        Ok(activated) => activated,
        Err(error) => return fail(error),
    };
    let socket = match (&activated, args.socket.path()) {
        (Some((_, passed)), Ok(named)) => {
            if args.socket.socket.is_some() && *passed != named {
                tracing::warn!(passed = %passed.display(), named = %named.display(), "serving on the socket the supervisor passed, not the one --socket names");
            }
            passed.clone()
        }
        (None, Ok(socket)) => socket,
        (_, Err(message)) => return fail(message),
    };
    // A plugin that asks for another profile's token (authplug-exchange,
    // through `authplug token`) must reach this agent, whatever socket the
    // user's environment names. Set while no other thread runs.
    match std::path::absolute(&socket) {
        Ok(absolute) => std::env::set_var(paths::ENV_SOCKET, absolute),
        Err(error) => {
            return fail(format!(
                "cannot resolve the socket path {}: {error}",
                socket.display()
            ))
        }
    }
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
        Ok(profiles) => profiles.from_file(&config_path),
        Err(error) => return fail(error),
    };
    if profiles.is_empty() {
        tracing::warn!(config = %config_path.display(), "no profiles configured; every token request fails until the config file has some");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the async runtime: {error}")),
    };
    let listener = activated.map(|(listener, _)| listener);
    let profiles = LiveProfiles::watching(profiles, &config_path, &args.profiles);
    match runtime.block_on(server::run_agent(&socket, profiles, listener)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ server::AgentError::AlreadyRunning(_)) => {
            fail(error);
            ExitCode::from(server::EXIT_ALREADY_RUNNING as u8)
        }
        Err(error) => fail(error),
    }
}
