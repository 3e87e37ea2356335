//! `authplug exec`: run a command with a profile's token in its environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use super::fail;
use super::token::TokenSource;

/// Run a command with a profile's token in an environment variable
///
/// The token goes in the environment of that one command, never in its
/// argv; authplug then becomes the command (exec), so its signals and exit
/// status are the command's own. It runs with core dumps off, as authplug
/// does, because its environment holds the token. Example:
/// `authplug exec --profile work -- sh -c 'curl -H "Authorization: Bearer $AUTHPLUG_TOKEN" https://api.example/'`
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub source: TokenSource,
    /// The environment variable that holds the token
    #[arg(long, default_value = "AUTHPLUG_TOKEN", value_name = "VAR")]
    pub env: String,
    /// The command and its arguments (after `--`)
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub fn run(args: ExecArgs) -> ExitCode {
    if args.env.is_empty() || args.env.contains('=') || args.env.contains('\0') {
        return fail(format!(
            "--env {:?} is not a variable name: give a name such as AUTHPLUG_TOKEN",
            args.env
        ));
    }
    let token = match args.source.fetch(None) {
        Ok(fetched) => fetched.token,
        Err(error) => return error.fail(),
    };
    let Some((program, arguments)) = args.command.split_first() else {
        return fail("no command given: put it after `--`, as in `authplug exec -- CMD ARGS`");
    };
    let error = std::process::Command::new(program)
        .args(arguments)
        .env(&args.env, token.expose_secret())
        .exec();
    // Only reached when the exec failed.
    fail(format!(
        "cannot run {}: {error}",
        std::path::Path::new(program).display()
    ))
}
