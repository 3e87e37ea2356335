//! The `authplug-oidc` binary: flags in, the library's plugin through the SDK.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use authplug_protocol::plugin;
use clap::Parser;

/// A line on stderr that cannot panic (a closed stderr is no reason to).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() {
    // Before clap, threads or a runtime: no child may inherit fd 3.
    plugin::protect_state_fd();
    // Tokens and the refresh token pass through this process: no core file,
    // no same-user debugger.
    if let Err(what) = authplug_protocol::forbid_core_dumps() {
        say(&format!(
            "authplug-oidc: warning: could not keep this process out of core dumps ({what})"
        ));
    }
    let config = authplug_oidc::config::Config::parse();
    match authplug_oidc::OidcPlugin::new(config) {
        Ok(oidc) => plugin::main(oidc),
        Err(why) => {
            say(&format!("error: {why}"));
            std::process::exit(2)
        }
    }
}
