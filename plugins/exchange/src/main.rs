//! The `authplug-exchange` binary: flags in, the library's plugin through
//! the SDK.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use authplug_protocol::plugin;
use clap::Parser;

fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() {
    // Before clap, threads or a child: no child may inherit fd 3.
    plugin::protect_state_fd();
    // Tokens pass through this process: no core file.
    if let Err(what) = authplug_protocol::forbid_core_dumps() {
        say(&format!(
            "authplug-exchange: warning: could not keep this process out of core dumps ({what})"
        ));
    }
    let config = authplug_exchange::config::Config::parse();
    match authplug_exchange::ExchangePlugin::new(config) {
        Ok(exchange) => plugin::main(exchange),
        Err(why) => {
            say(&format!("error: {why}"));
            std::process::exit(2)
        }
    }
}
