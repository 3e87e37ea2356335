//! One `[profiles.NAME]` table of the file (`ProfileConfig`): read as one
//! table, held as two parts, the login ([`LoginConfig`]) and the settings
//! of the tools that use its token ([`ToolSettings`]), so that editing a
//! tool's setting logs no one out.

use std::collections::BTreeMap;

use serde::Deserialize;

use authplug_protocol::Secret;

use super::login::LoginConfig;

/// One profile: its login, and the settings of tools that use its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ProfileTable")]
pub struct ProfileConfig {
    /// What defines the login: an edit starts it afresh.
    pub login: LoginConfig,
    /// What only the tools read: an edit keeps the login.
    pub tools: ToolSettings,
}

/// The settings of a profile that only the tools using its token read; the
/// agent never looks at them.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ToolSettings {
    /// The username `authplug git-credential` gives git with this
    /// profile's token (default `oauth2`).
    pub git_username: Option<String>,
}

/// The table as the file writes it, every key side by side (see the
/// module's example in `config/mod.rs` for what each means).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileTable {
    command: Secret<String>,
    timeout: Option<f64>,
    skew: Option<f64>,
    cooldown: Option<f64>,
    #[serde(default)]
    env: BTreeMap<String, Secret<String>>,
    subject_profile: Option<String>,
    git_username: Option<String>,
}

impl From<ProfileTable> for ProfileConfig {
    fn from(table: ProfileTable) -> ProfileConfig {
        let ProfileTable {
            command,
            timeout,
            skew,
            cooldown,
            env,
            subject_profile,
            git_username,
        } = table;
        ProfileConfig {
            login: LoginConfig {
                command,
                timeout,
                skew,
                cooldown,
                env,
                subject_profile,
            },
            tools: ToolSettings { git_username },
        }
    }
}
