//! `authplug`: a thin command line over the authplug libraries.
//!
//! Each subcommand lives in its own module under `cli/`; this file only
//! parses the command line and dispatches. To add a subcommand, add a
//! variant to [`Command`] with its `clap::Args` struct and one match arm.

// Output goes through `say!`/`say_on_stderr!` (cli/mod.rs): they cannot
// panic on a closed pipe, as `println!` would, losing a token.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cli;

/// Credential plugins for the command line: run them, check them, keep
/// their tokens.
#[derive(Debug, Parser)]
#[command(
    name = "authplug",
    version,
    propagate_version = true,
    after_long_help = cli::exit::help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More diagnostics on stderr (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

/// The subcommands. Each one's options (its module's `clap::Args`) are
/// built only when it runs or is shown (`defer`): building all of them
/// would cost every `authplug token` a fifth of its instructions. So the
/// one-line summaries that `authplug --help` lists are here; each must be
/// its module's first doc line (tests below).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    #[command(about = "Run a plugin once and print its token on stdout")]
    Run(cli::run::RunArgs),
    #[command(about = "Check that a plugin follows the protocol: its runs, a readable report")]
    Check(cli::check::CheckArgs),
    #[command(about = "Keep plugin tokens in memory and serve them on a unix socket")]
    Agent(cli::agent::AgentArgs),
    #[command(about = "Print a profile's token (starting the agent if none runs)")]
    Token(cli::token::TokenArgs),
    #[command(about = "Log in once with authplug-oidc, see the claims, and write the profile")]
    Setup(cli::setup::SetupArgs),
    #[command(about = "Run a command with a profile's token in an environment variable")]
    Exec(cli::exec::ExecArgs),
    #[command(
        about = "Be kubectl's credential plugin (client-go exec), for a kubeconfig's `users[].user.exec`"
    )]
    Kubectl(cli::kubectl::KubectlArgs),
    #[command(
        about = "git's credential helper over the agent (git runs it as `git-credential-authplug`)"
    )]
    GitCredential(cli::git_credential::GitCredentialArgs),
    #[command(
        about = "Print an MCP server's HTTP headers as JSON, for an MCP client's headers hook"
    )]
    McpHeaders(cli::mcp_headers::McpHeadersArgs),
    #[command(about = "Serve an upstream on this machine, adding the token to each request")]
    Proxy(cli::proxy::ProxyArgs),
    #[command(
        about = "Report that a server refused a token (read from stdin, or the one the agent holds with --current); the next `authplug token` runs the plugin again"
    )]
    Reject(cli::reject::RejectArgs),
    #[command(
        about = "Log out: the plugin revokes what it holds at its provider (never opening a browser), then the agent forgets the token and the state"
    )]
    Logout(cli::logout::LogoutArgs),
    #[command(about = "Show every profile's state (no secrets)")]
    Status(cli::status::StatusArgs),
    #[command(about = "Stop the agent; it forgets every token and state it held")]
    Stop(cli::stop::StopArgs),
    #[command(
        about = "Print shell completions for authplug (scripts/install puts them where each shell looks)"
    )]
    Completions(cli::completions::CompletionsArgs),
    #[command(
        about = "Write authplug's manual pages (authplug.1, authplug-token.1, ...) into a directory"
    )]
    Man(cli::completions::ManArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let hint = cli::usage::hint(&error, &args);
            let _ = error.print();
            if let Some(hint) = hint {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "\nhint: {hint}");
            }
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    // `authplug token` may be a host's credential plugin: whether fd 3 is
    // the host's state pipe is decided before anything opens a file, and
    // fd 3 is kept from every program started (an autostarted agent would
    // hold the host's run up).
    if matches!(cli.command, Command::Token(_)) {
        authplug_protocol::plugin::protect_state_fd();
    }
    cli::init_logging(cli.verbose);
    // Every subcommand may hold a token or a state (the agent all of them):
    // none goes to a core file or to a same-user debugger.
    if let Err(what) = authplug_protocol::forbid_core_dumps() {
        tracing::warn!(%what, "could not keep this process out of core dumps");
    }
    match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Agent(args) => cli::agent::run(args),
        Command::Token(args) => cli::token::run(args),
        Command::Setup(args) => cli::setup::run(args),
        Command::Exec(args) => cli::exec::run(args),
        Command::Kubectl(args) => cli::kubectl::run(args),
        Command::GitCredential(args) => cli::git_credential::run(args),
        Command::McpHeaders(args) => cli::mcp_headers::run(args),
        Command::Proxy(args) => cli::proxy::run(args),
        Command::Reject(args) => cli::reject::run(args),
        Command::Logout(args) => cli::logout::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Stop(args) => cli::stop::run(args),
        Command::Completions(args) => cli::completions::completions(args, Cli::command()),
        Command::Man(args) => cli::completions::man(args, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `authplug --help` lists for a subcommand is what its own
    /// `--help` says first.
    #[test]
    fn each_summary_is_its_subcommands_first_line() {
        let command = Cli::command();
        for listed in command.get_subcommands() {
            let mut built = listed.clone();
            built.build();
            assert_eq!(
                listed.get_about().map(ToString::to_string),
                built.get_about().map(ToString::to_string),
                "the summary of `authplug {}` in main.rs differs from its module's doc",
                listed.get_name()
            );
            // Its own options came with the build (each has one besides
            // the --help, --version and --verbose that clap adds).
            let own = (built.get_arguments())
                .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version" | "verbose"))
                .count();
            assert!(
                own > 0,
                "authplug {} has no options of its own",
                listed.get_name()
            );
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        let mut command = Cli::command();
        command.build();
        command.debug_assert();
    }
}
