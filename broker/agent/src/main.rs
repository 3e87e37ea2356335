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

#[derive(Debug, Subcommand)]
enum Command {
    Run(cli::run::RunArgs),
    Check(cli::check::CheckArgs),
    Agent(cli::agent::AgentArgs),
    Token(cli::token::TokenArgs),
    Setup(cli::setup::SetupArgs),
    Exec(cli::exec::ExecArgs),
    Kubectl(cli::kubectl::KubectlArgs),
    GitCredential(cli::git_credential::GitCredentialArgs),
    McpHeaders(cli::mcp_headers::McpHeadersArgs),
    Proxy(cli::proxy::ProxyArgs),
    Reject(cli::reject::RejectArgs),
    Logout(cli::logout::LogoutArgs),
    Status(cli::status::StatusArgs),
    Stop(cli::stop::StopArgs),
    Completions(cli::completions::CompletionsArgs),
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
