//! The `authplug-oidc` binary: flags in, the library's plugin through the SDK.

use authplug_protocol::plugin;
use clap::Parser;

fn main() {
    // Before clap, threads or a runtime: no child may inherit fd 3.
    plugin::protect_state_fd();
    let config = authplug_oidc::config::Config::parse();
    match authplug_oidc::OidcPlugin::new(config) {
        Ok(oidc) => plugin::main(oidc),
        Err(why) => {
            eprintln!("error: {why}");
            std::process::exit(2)
        }
    }
}
