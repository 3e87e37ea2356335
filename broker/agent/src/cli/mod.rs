//! The subcommands of `authplug`, one module each, and what they share.

// `println!` and `eprintln!` panic when the stream is closed (`authplug
// status | head -1`, `authplug token 2>&1 | head -1`), which would lose the
// rest of the output, the token included. A reader gone is no reason to
// stop: these write and ignore the error. Defined before the modules that
// use them.

/// A line on stdout, whether or not anyone reads it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// A line on stderr, whether or not anyone reads it.
macro_rules! say_on_stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod agent;
pub mod check;
pub mod completions;
pub mod exec;
pub mod exit;
mod expiry;
pub mod git_credential;
mod interrupt;
pub mod kubectl;
pub mod logout;
pub mod mcp_headers;
mod paste_relay;
pub mod proxy;
mod proxy_server;
pub mod reject;
pub mod run;
pub mod setup;
pub mod shared_args;
pub mod status;
pub mod stop;
pub mod token;
pub mod usage;

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
    say_on_stderr!("authplug: {message}");
    ExitCode::FAILURE
}
