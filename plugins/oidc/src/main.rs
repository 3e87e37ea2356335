//! The `authplug-oidc` binary: flags in, the library's plugin through the SDK.

use authplug_protocol::plugin;
use clap::Parser;

fn main() {
    // Before clap, threads or a runtime: no child may inherit fd 3.
    plugin::protect_state_fd();
    // Tokens and the refresh token pass through this process: no core file,
    // no same-user debugger.
    if let Err(what) = authplug_protocol::forbid_core_dumps() {
        eprintln!("authplug-oidc: warning: could not keep this process out of core dumps ({what})");
    }
    let config = authplug_oidc::config::Config::parse();
    match authplug_oidc::OidcPlugin::new(config) {
        Ok(oidc) => plugin::main(oidc),
        Err(why) => {
            eprintln!("error: {why}");
            std::process::exit(2)
        }
    }
}
