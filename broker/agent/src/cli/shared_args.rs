//! The flags several subcommands share, each defined once: `--socket`,
//! `--profile`, `--config` and `--timeout`, with what they resolve to.

use std::path::PathBuf;
use std::time::Duration;

use authplug_agent::config::ConfigFile;
use authplug_agent::paths;

/// `--socket`: the agent's socket.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// The agent's unix socket [default: $XDG_RUNTIME_DIR/authplug/agent.sock,
    /// else ~/.authplug/agent.sock]
    #[arg(long, env = paths::ENV_SOCKET, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl SocketArg {
    /// The socket named, else the default one.
    pub fn path(&self) -> Result<PathBuf, String> {
        match &self.socket {
            Some(path) => Ok(path.clone()),
            None => paths::default_socket().map_err(|e| e.to_string()),
        }
    }
}

/// `--profile NAME`: which of the agent's profiles.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArg {
    /// The profile [default: the agent's default profile]
    #[arg(long, short = 'p', value_name = "NAME")]
    pub profile: Option<String>,
}

/// `--config FILE`: the profiles file, for this command and for an agent it
/// starts.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The profiles file, also for an agent started by this command
    /// [default: $XDG_CONFIG_HOME/authplug/config.toml, else
    /// ~/.config/authplug/config.toml]
    #[arg(long, env = "AUTHPLUG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The file named, else the default one.
    pub fn path(&self) -> Result<PathBuf, String> {
        match &self.config {
            Some(path) => Ok(path.clone()),
            None => paths::default_config().map_err(|e| e.to_string()),
        }
    }

    /// The file, read: one named must exist, the default one may not.
    pub fn load(&self) -> Result<(PathBuf, ConfigFile), String> {
        let path = self.path()?;
        let file = ConfigFile::load(&path, self.config.is_some()).map_err(|e| e.to_string())?;
        Ok((path, file))
    }
}

/// `--timeout SECS`: how long one plugin run may take.
#[derive(Debug, Clone, clap::Args)]
pub struct TimeoutArg {
    /// Stop the plugin after this many seconds (in each run)
    #[arg(
        long,
        value_name = "SECS",
        env = "AUTHPLUG_TIMEOUT",
        default_value_t = 300.0
    )]
    pub timeout: f64,
}

impl TimeoutArg {
    /// The timeout, if it is a positive number of seconds.
    pub fn duration(&self) -> Result<Duration, String> {
        Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "--timeout must be a positive number of seconds, not {}",
                    self.timeout
                )
            })
    }
}
