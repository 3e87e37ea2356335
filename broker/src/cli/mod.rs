//! The subcommands of `authplug`, one module each, and what they share.

pub mod agent;
pub mod check;
mod interrupt;
pub mod reject;
pub mod run;
pub mod socket;
pub mod status;
pub mod stop;
pub mod token;

use std::process::ExitCode;

/// Diagnostics go to stderr, filtered by `RUST_LOG` (default: warnings;
/// `-v` info, `-vv` debug). Colours only on a terminal, so an agent's log
/// file stays plain. Tokens and state are never logged, whatever the level.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// A current-thread runtime for subcommands that run one plugin.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))
}

/// Prints `authplug: message` on stderr and returns failure. A closed
/// stderr is no reason to panic.
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "authplug: {message}");
    ExitCode::FAILURE
}
