//! `git-credential-authplug`: a git credential helper that gives git the
//! authplug agent's token for a profile.
//!
//! git runs it as `git-credential-authplug [--profile NAME] get|store|erase`
//! when configured with `credential.helper = "authplug --profile NAME"`
//! (git puts `git-credential-` before the first word). `get` answers with
//! the token: `authtype=Bearer` when git takes it (2.46 and later), else as
//! the password of the profile's `git_username` (default `oauth2`).
//! `erase` (git's "that was refused") rejects that token in the agent,
//! compare-and-clear, so the next `get` runs the plugin again; `store`
//! does nothing: the agent keeps the token, in memory. Without
//! `--profile`, the config file's `[git.hosts]` picks the profile by host.
//!
//! Like `authplug` (`main.rs`), a thin layer: the protocol is
//! `authplug_agent::git_credential`, the agent's client
//! `authplug_agent::client`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use authplug_agent::client::{Client, ClientError};
use authplug_agent::config::ConfigFile;
use authplug_agent::git_credential::{self, Description, Operation};
use authplug_agent::paste_relay::PasteRelay;
use authplug_agent::paths;
use authplug_agent::wire::{ErrorKind, Op};
use clap::Parser;

/// The username given with the token when the profile names none: what
/// GitLab and Gitea expect for OAuth tokens; GitHub takes any.
const DEFAULT_USERNAME: &str = "oauth2";

/// git's credential helper over the authplug agent
#[derive(Debug, Parser)]
#[command(name = "git-credential-authplug", version)]
struct Args {
    /// The profile [default: by host, from the config's [git.hosts]]
    #[arg(long, short = 'p')]
    profile: Option<String>,
    /// The agent's unix socket [default: as `authplug`]
    #[arg(long, env = paths::ENV_SOCKET, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The config file ([git.hosts], git_username; and for an agent
    /// started here)
    #[arg(long, env = "AUTHPLUG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never let the plugin open a browser or prompt (also when git's
    /// GIT_TERMINAL_PROMPT is 0)
    #[arg(long)]
    non_interactive: bool,
    /// What git asks: get, store or erase (others are ignored, as git asks)
    operation: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(what) = authplug_protocol::forbid_core_dumps() {
        say(&format!(
            "could not keep this process out of core dumps: {what}"
        ));
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            say(&message);
            ExitCode::FAILURE
        }
    }
}

fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "git-credential-authplug: {message}");
}

fn run(args: Args) -> Result<(), String> {
    let operation = Operation::parse(&args.operation);
    // Read whatever the operation: git writes the description before it
    // reads an answer, and a helper gone early would break its pipe.
    let mut description = Description::read(std::io::stdin().lock())?;
    if matches!(operation, Operation::Store | Operation::Other(_)) {
        return Ok(());
    }
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => paths::default_config().map_err(|e| e.to_string())?,
    };
    let config =
        ConfigFile::load(&config_path, args.config.is_some()).map_err(|e| e.to_string())?;
    let profile = match (&args.profile, &description.host) {
        (Some(profile), _) => profile.clone(),
        (None, Some(host)) => match config.git.hosts.get(host) {
            Some(profile) => profile.clone(),
            // Not ours: git asks the next helper, or the user.
            None => return Ok(()),
        },
        (None, None) => return Ok(()),
    };
    let socket = match &args.socket {
        Some(socket) => socket.clone(),
        None => paths::default_socket().map_err(|e| e.to_string())?,
    };
    match operation {
        Operation::Erase => erase(&socket, profile, &mut description),
        _ => {
            let username = config
                .profiles
                .get(&profile)
                .and_then(|p| p.git_username.clone())
                .unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
            let interactive = !args.non_interactive
                && std::env::var_os("GIT_TERMINAL_PROMPT").map_or(true, |v| v != "0");
            get(
                &args,
                &socket,
                profile,
                &description,
                &username,
                interactive,
            )
        }
    }
}

fn get(
    args: &Args,
    socket: &std::path::Path,
    profile: String,
    description: &Description,
    username: &str,
    interactive: bool,
) -> Result<(), String> {
    // A login's address may have to be pasted back here (paste_relay.rs):
    // git's stdin is its pipe, but the terminal is the user's.
    let mut relay = PasteRelay::default();
    let answer = Client::connect_maybe_starting(socket, true, args.config.as_deref()).and_then(
        |mut client| {
            let op = Op::Token {
                profile: Some(profile.clone()),
                interactive,
                force: false,
                consumer: None,
                keep_running: false,
            };
            // The plugin's own lines (a login URL), as they come.
            client.request(op, |line| {
                let _ = writeln!(std::io::stderr(), "{line}");
                if interactive {
                    relay.start_once();
                }
            })
        },
    );
    drop(relay);
    let mut response = answer.map_err(|error| {
        let hint = match error.kind() {
            ErrorKind::LoginNeeded => format!(
                "\ngit may not prompt here (GIT_TERMINAL_PROMPT=0, or --non-interactive): run `authplug token --profile {}` in a terminal to log in, then git again",
                shell_words::quote(&profile)
            ),
            ErrorKind::CoolingDown => format!(
                "\nrun `authplug token --profile {} --force` to log in now",
                shell_words::quote(&profile)
            ),
            _ => String::new(),
        };
        give_up(format!("no token for profile `{profile}`: {error}{hint}"))
    })?;
    let token = (response.token.take())
        .ok_or_else(|| give_up("the agent answered without a token".to_owned()))?;
    let token = token.expose_secret();
    // As the agent knows it: reported by the plugin, or a JWT's `exp`.
    let expires_at = response.expires_at;
    let answer = git_credential::answer(description, token, username, expires_at).ok_or_else(
        || give_up(format!("the token of profile `{profile}` holds a line break or NUL, which git's helper protocol cannot carry")),
    )?;
    std::io::stdout()
        .lock()
        .write_all(answer.as_bytes())
        .map_err(|error| format!("cannot write the credential to git: {error}"))
}

/// Tells git not to ask the user for a password (no password would do),
/// and returns the message.
fn give_up(message: String) -> String {
    let _ = std::io::stdout()
        .lock()
        .write_all(git_credential::GIVE_UP.as_bytes());
    message
}

fn erase(
    socket: &std::path::Path,
    profile: String,
    description: &mut Description,
) -> Result<(), String> {
    let Some(token) = description.take_refused_token() else {
        return Ok(());
    };
    let mut client = match Client::connect(socket) {
        Ok(client) => client,
        // No agent, no cached token: nothing to clear.
        Err(ClientError::NotRunning(_)) => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    let op = Op::Reject {
        profile: Some(profile),
        token,
        challenge: None,
    };
    client
        .request(op, |_| {})
        .map(|_| ())
        .map_err(|error| error.to_string())
}
