//! What defines a profile's login (`LoginConfig`): the plugin and how it
//! runs, and the broker built from it. An edit of any of it starts the
//! login afresh on a reload; the tools' settings live apart
//! ([`super::ToolSettings`]).

use std::collections::BTreeMap;
use std::path::Path;

use authplug_broker::{Broker, BrokerOptions, PluginCommand};
use authplug_protocol::Secret;

use super::bounds::{seconds, COOLDOWN, SKEW, TIMEOUT};
use super::file::ConfigError;

/// What defines one profile's login: two profiles with equal `LoginConfig`s
/// run the same plugin the same way, so a reload keeps the login.
#[derive(Clone, PartialEq)]
pub struct LoginConfig {
    /// The plugin's command line, split by shell-word rules (no shell runs).
    /// A secret: it may hold a client secret.
    pub command: Secret<String>,
    /// Seconds for one plugin run.
    pub timeout: Option<f64>,
    /// Refresh a JWT this many seconds before its `exp`.
    pub skew: Option<f64>,
    /// Seconds without interactive runs after one failed.
    pub cooldown: Option<f64>,
    /// Extra environment for the plugin; the values may be secrets.
    pub env: BTreeMap<String, Secret<String>>,
    /// The profile whose token this profile's plugin trades for its own
    /// (`authplug-exchange`): passed to the plugin as
    /// `AUTHPLUG_SUBJECT_PROFILE`, and a logout of that profile logs this
    /// one out too. The chain may not loop.
    pub subject_profile: Option<String>,
}

impl LoginConfig {
    /// A login that runs `command` with every setting at its default (a
    /// `--profile NAME=COMMANDLINE` flag).
    pub fn command(command: &str) -> LoginConfig {
        LoginConfig {
            command: Secret::new(command.to_owned()),
            timeout: None,
            skew: None,
            cooldown: None,
            env: BTreeMap::new(),
            subject_profile: None,
        }
    }

    /// A broker for this profile, named `name` in logs and messages.
    pub fn broker(&self, name: &str) -> Result<Broker, ConfigError> {
        let command = PluginCommand::parse(self.command.expose_secret()).map_err(|error| {
            ConfigError::Profile {
                name: name.to_owned(),
                message: error.to_string(),
            }
        })?;
        let mut options = BrokerOptions::default();
        options.label = Some(name.to_owned());
        options.run.timeout = seconds(name, "timeout", self.timeout, options.run.timeout, TIMEOUT)?;
        options.skew = seconds(name, "skew", self.skew, options.skew, SKEW)?;
        options.interactive_cooldown = seconds(
            name,
            "cooldown",
            self.cooldown,
            options.interactive_cooldown,
            COOLDOWN,
        )?;
        options.run.env = (self.env.iter())
            .map(|(k, v)| (k.into(), v.expose_secret().into()))
            .collect();
        if let Some(subject) = &self.subject_profile {
            options
                .run
                .env
                .push((ENV_SUBJECT_PROFILE.into(), subject.into()));
        } else if names_a_subject(&command) || self.env.contains_key(ENV_SUBJECT_PROFILE) {
            return Err(ConfigError::Profile {
                name: name.to_owned(),
                message: "its command names --subject-profile: say `subject_profile = \"NAME\"` in the profile instead (and leave the flag out), so that the agent knows the chain: a logout of NAME then logs this profile out too, and a loop is caught".into(),
            });
        }
        Ok(Broker::new(command, options))
    }
}

impl std::fmt::Debug for LoginConfig {
    /// The program's name and the env names only: the command line and the
    /// env values may hold a client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let program = PluginCommand::parse(self.command.expose_secret())
            .ok()
            .and_then(|command| {
                Path::new(command.program())
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            });
        f.debug_struct("LoginConfig")
            .field("program", &program)
            .field("timeout", &self.timeout)
            .field("skew", &self.skew)
            .field("cooldown", &self.cooldown)
            .field("env_names", &self.env.keys().collect::<Vec<_>>())
            .field("subject_profile", &self.subject_profile)
            .finish_non_exhaustive()
    }
}

/// The variable that tells a plugin the profile whose token it trades.
pub const ENV_SUBJECT_PROFILE: &str = "AUTHPLUG_SUBJECT_PROFILE";

/// Whether a command line passes `--subject-profile` itself.
pub(super) fn names_a_subject(command: &PluginCommand) -> bool {
    (command.arguments().iter()).any(|argument| {
        let argument = argument.to_string_lossy();
        argument == "--subject-profile" || argument.starts_with("--subject-profile=")
    })
}
