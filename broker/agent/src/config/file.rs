//! The config file: its schema (`ConfigFile`, `GitConfig`), reading it,
//! and what can be wrong with it (`ConfigError`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::mcp_servers::McpConfig;
use crate::secret_file::{self, SecretFileError};

use super::profile::ProfileConfig;

/// A config file larger than this is refused: far more than any set of
/// profiles needs, and what a pipe (`--config <(...)`) gets room for.
pub const CONFIG_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The config file: profiles, and which one is the default.
pub struct ConfigFile {
    /// The profile used when a request names none.
    pub default_profile: Option<String>,
    #[serde(default)]
    /// The profiles by name.
    pub profiles: BTreeMap<String, ProfileConfig>,
    #[serde(default)]
    /// For `git-credential-authplug`.
    pub git: GitConfig,
    #[serde(default)]
    /// For `authplug mcp-headers`.
    pub mcp: McpConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[git]`: which profile's token `git-credential-authplug` gives for a
/// host, when it is not given `--profile`.
pub struct GitConfig {
    #[serde(default)]
    /// Host (as git names it: `git.example.com`, or with `:PORT`) to
    /// profile name.
    pub hosts: BTreeMap<String, String>,
}

/// A config that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SecretFileError,
    },
    #[error("config file {path} is not valid: {message}")]
    /// The file is not valid TOML of this shape.
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    #[error("profile `{name}`: {message}")]
    /// A profile cannot be used.
    Profile {
        /// Its name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    #[error("`--profile {0}` must look like NAME=COMMANDLINE, e.g. --profile work='authplug-oidc --issuer https://id.example.com --client-id cli'")]
    /// A `--profile` flag is not NAME=COMMANDLINE.
    Flag(String),
    #[error("default_profile `{0}` is not one of the profiles")]
    /// `default_profile` names no profile.
    UnknownDefault(String),
}

impl ConfigFile {
    /// Reads `path`. A missing file is an empty config unless `required`.
    /// Warns (a log line) if other users may read or write it.
    pub fn load(path: &Path, required: bool) -> Result<ConfigFile, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(ConfigFile::default())
            }
            Err(source) => return Err(read_error(source.into())),
        };
        if let Ok(metadata) = file.metadata() {
            warn_if_shared(path, &metadata);
        }
        let bytes = secret_file::read(&mut file, CONFIG_LIMIT).map_err(read_error)?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|error| parse_error(format!("it is not UTF-8 text ({error})")))?;
        ConfigFile::parse(text).map_err(parse_error)
    }

    /// A config file's text, as [`ConfigFile::load`] reads it.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }
}

/// The file may hold client secrets (in `env` or a command line), and
/// whoever can write it chooses what the agent runs.
pub(super) fn warn_if_shared(path: &Path, metadata: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode();
    // Not `--config /dev/null` and the like.
    if !metadata.is_file() || mode & 0o066 == 0 {
        return;
    }
    let what = if mode & 0o022 != 0 {
        "readable or writable"
    } else {
        "readable"
    };
    tracing::warn!(
        "config file {} is {what} by other users (mode {:o}); it may hold secrets (env values, command lines), and whoever can write it chooses what the agent runs: chmod 600 {}",
        path.display(),
        mode & 0o777,
        path.display()
    );
}
