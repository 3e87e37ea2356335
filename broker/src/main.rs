//! `authplug`: a thin command line over the authplug libraries.
//!
//! Each subcommand lives in its own module under `cli/`; this file only
//! parses the command line and dispatches. To add a subcommand, add a
//! variant to [`Command`] with its `clap::Args` struct and one match arm.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Credential plugins for the command line: run them, check them, keep
/// their tokens.
#[derive(Debug, Parser)]
#[command(name = "authplug", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(cli::run::RunArgs),
    Check(cli::check::CheckArgs),
}

fn main() -> ExitCode {
    cli::init_logging();
    match Cli::parse().command {
        Command::Run(args) => cli::run::run(args),
        Command::Check(args) => cli::check::run(args),
    }
}
