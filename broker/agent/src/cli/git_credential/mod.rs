//! `authplug git-credential get|store|erase`: git's credential helper over
//! the agent. git runs it as `git-credential-authplug` (a name git makes
//! from `credential.helper = "authplug --profile NAME"`), a shim that runs
//! this (`src/bin/git-credential-authplug.rs`).
//!
//! `get` answers with the token: `authtype=Bearer` when git takes it (2.46
//! and later), else as the password of the profile's `git_username`
//! (default `oauth2`). `erase` (git's "that was refused") rejects that
//! token in the agent, compare-and-clear, so the next `get` runs the
//! plugin again; `store` does nothing: the agent keeps the token, in
//! memory. Without `--profile`, the config file's `[git.hosts]` picks the
//! profile by host. The helper protocol itself is `protocol.rs`.

mod protocol;

use std::io::Write;
use std::process::ExitCode;

use authplug_agent::client::{Client, ClientError};
use authplug_agent::wire::ErrorKind;
use protocol::{Description, Operation};

use crate::cli::shared_args::{ConfigArg, ProfileArg, SocketArg};
use crate::cli::token::TokenSource;

/// The username given with the token when the profile names none: what
/// GitLab and Gitea expect for OAuth tokens; GitHub takes any.
const DEFAULT_USERNAME: &str = "oauth2";

/// git's credential helper over the agent (git runs it as `git-credential-authplug`)
#[derive(Debug, clap::Args)]
#[command(mut_arg("profile", |arg| arg.help("The profile [default: by host, from the config's [git.hosts]]")))]
pub struct GitCredentialArgs {
    #[command(flatten)]
    pub target: ProfileArg,
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Never let the plugin open a browser or prompt (also when git's
    /// GIT_TERMINAL_PROMPT is 0)
    #[arg(long)]
    pub non_interactive: bool,
    /// What git asks: get, store or erase (others are ignored, as git asks)
    pub operation: String,
}

pub fn run(args: GitCredentialArgs) -> ExitCode {
    match answer(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            say_on_stderr!("git-credential-authplug: {message}");
            ExitCode::FAILURE
        }
    }
}

fn answer(args: GitCredentialArgs) -> Result<(), String> {
    let operation = Operation::parse(&args.operation);
    // Read whatever the operation: git writes the description before it
    // reads an answer, and a helper gone early would break its pipe.
    let mut description = Description::read(std::io::stdin().lock())?;
    if matches!(operation, Operation::Store | Operation::Other(_)) {
        return Ok(());
    }
    let (_, config) = args.config.load()?;
    let profile = match (&args.target.profile, &description.host) {
        (Some(profile), _) => profile.clone(),
        (None, Some(host)) => match config.git.hosts.get(host) {
            Some(profile) => profile.clone(),
            // Not ours: git asks the next helper, or the user.
            None => return Ok(()),
        },
        (None, None) => return Ok(()),
    };
    if let Operation::Erase = operation {
        return erase(&args, profile, &mut description);
    }
    let username = (config.profiles.get(&profile))
        .and_then(|p| p.tools.git_username.clone())
        .unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
    let interactive =
        !args.non_interactive && std::env::var_os("GIT_TERMINAL_PROMPT").map_or(true, |v| v != "0");
    let source = TokenSource {
        socket: args.socket.clone(),
        target: ProfileArg {
            profile: Some(profile.clone()),
        },
        non_interactive: !interactive,
        force: false,
        no_autostart: false,
        config: args.config.clone(),
    };
    let fetched = source.fetch(None).map_err(|error| {
        let hint = match error.kind {
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
    // As the agent knows it: reported by the plugin, or a JWT's `exp`.
    let expires_at = fetched
        .expires_at
        .map(authplug_protocol::expiry::unix_seconds);
    let answer = protocol::answer(
        &description,
        fetched.token.expose_secret(),
        &username,
        expires_at,
    )
    .ok_or_else(|| {
        give_up(format!(
            "the token of profile `{profile}` holds a line break or NUL, which git's helper protocol cannot carry"
        ))
    })?;
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
        .write_all(protocol::GIVE_UP.as_bytes());
    message
}

fn erase(
    args: &GitCredentialArgs,
    profile: String,
    description: &mut Description,
) -> Result<(), String> {
    let Some(token) = description.take_refused_token() else {
        return Ok(());
    };
    let mut client = match Client::connect(&args.socket.path()?) {
        Ok(client) => client,
        // No agent, no cached token: nothing to clear.
        Err(ClientError::NotRunning(_)) => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    client
        .reject(Some(profile), token, None)
        .map(|_| ())
        .map_err(|error| error.to_string())
}
