//! `--socket`, shared by the agent subcommands.

use std::path::PathBuf;

use authplug_agent::paths;

/// `--socket`, shared by `agent`, `token`, `reject`, `status` and `stop`.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// The agent's unix socket [default: $XDG_RUNTIME_DIR/authplug/agent.sock,
    /// else ~/.authplug/agent.sock]
    #[arg(long, env = paths::ENV_SOCKET, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl SocketArg {
    pub fn path(&self) -> Result<PathBuf, String> {
        match &self.socket {
            Some(path) => Ok(path.clone()),
            None => paths::default_socket().map_err(|e| e.to_string()),
        }
    }
}
