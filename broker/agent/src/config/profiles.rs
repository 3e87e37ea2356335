//! The agent's profiles, each with its broker (`Profiles`): built from the
//! file and the flags, rebuilt on a reload keeping unchanged logins, and
//! looked up by name (`ProfileError`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use authplug_broker::Broker;

use super::bounds::check_name;
use super::chains::{chain, check_chains};
use super::file::{ConfigError, ConfigFile};
use super::login::LoginConfig;

/// A profile a request names (or leaves to the default) that the agent
/// does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error(
        "no profile given and no default profile; name one with --profile ({})",
        known_profiles(known, config)
    )]
    /// No profile named, and no default.
    NoDefault {
        /// The profiles there are.
        known: Vec<String>,
        /// The agent's config file.
        config: Option<PathBuf>,
    },
    #[error("no profile named `{name}` ({})", known_profiles(known, config))]
    /// No profile of that name.
    Unknown {
        /// The name asked for.
        name: String,
        /// The profiles there are.
        known: Vec<String>,
        /// The agent's config file.
        config: Option<PathBuf>,
    },
}

pub(super) fn known_profiles(known: &[String], config: &Option<PathBuf>) -> String {
    let file = match config {
        Some(path) => format!(
            "the agent's config file is {}, which it rereads when it changes",
            path.display()
        ),
        None => "the agent was started without a config file".to_owned(),
    };
    if known.is_empty() {
        format!("no profiles are configured: add one as [profiles.NAME] with a command; {file}")
    } else {
        format!("known profiles: {}; {file}", known.join(", "))
    }
}

/// The agent's profiles, each with its broker.
#[derive(Debug, Default)]
pub struct Profiles {
    profiles: BTreeMap<String, Broker>,
    /// Of every profile built from settings: the login it was built from.
    settings: BTreeMap<String, LoginConfig>,
    default: Option<String>,
    /// The config file, named in messages.
    config_file: Option<PathBuf>,
}

impl Profiles {
    /// The config file's profiles, then the flags (`NAME=COMMANDLINE`, which
    /// replace a file profile of the same name).
    pub fn build(file: &ConfigFile, flags: &[String]) -> Result<Profiles, ConfigError> {
        Profiles::rebuild(file, flags, None)
    }

    /// [`Profiles::build`], keeping from `previous` the broker (its token,
    /// state and runs) of every profile whose settings are unchanged: a
    /// reload after an edit logs out only the profiles edited.
    pub fn rebuild(
        file: &ConfigFile,
        flags: &[String],
        previous: Option<&Profiles>,
    ) -> Result<Profiles, ConfigError> {
        let mut profiles = BTreeMap::new();
        let mut settings = BTreeMap::new();
        let mut fresh = std::collections::BTreeSet::new();
        let mut add = |name: &str, config: &LoginConfig| -> Result<(), ConfigError> {
            let kept = previous.and_then(|previous| {
                (previous.settings.get(name))
                    .is_some_and(|before| before == config)
                    .then(|| previous.profiles.get(name).cloned())
                    .flatten()
            });
            let broker = match kept {
                Some(broker) => broker,
                None => {
                    fresh.insert(name.to_owned());
                    config.broker(name)?
                }
            };
            profiles.insert(name.to_owned(), broker);
            settings.insert(name.to_owned(), config.clone());
            Ok(())
        };
        for (name, config) in &file.profiles {
            check_name(name)?;
            add(name, &config.login)?;
        }
        for flag in flags {
            let (name, command) = flag
                .split_once('=')
                .ok_or_else(|| ConfigError::Flag(flag.clone()))?;
            check_name(name)?;
            add(name, &LoginConfig::command(command))?;
        }
        check_chains(&settings)?;
        // A login built on one that starts afresh starts afresh too: it was
        // traded from the old login (perhaps another identity).
        for (name, config) in &settings {
            if !fresh.contains(name) && chain(&settings, name).any(|link| fresh.contains(link)) {
                profiles.insert(name.clone(), config.broker(name)?);
            }
        }
        if let Some(default) = &file.default_profile {
            if !profiles.contains_key(default) {
                return Err(ConfigError::UnknownDefault(default.clone()));
            }
        }
        Ok(Profiles {
            profiles,
            settings,
            default: file.default_profile.clone(),
            config_file: None,
        })
    }

    /// Adds a profile, or replaces the one of that name.
    pub fn insert(&mut self, name: &str, broker: Broker) {
        self.profiles.insert(name.to_owned(), broker);
        self.settings.remove(name);
    }

    /// Names the file these profiles came from, for messages.
    pub fn from_file(mut self, path: &Path) -> Profiles {
        self.config_file = Some(path.to_owned());
        self
    }

    /// The default profile: `default_profile`, else the only profile, else
    /// one named `default`.
    pub fn default_name(&self) -> Option<&str> {
        if let Some(name) = &self.default {
            return Some(name);
        }
        if self.profiles.len() == 1 {
            return self.profiles.keys().next().map(String::as_str);
        }
        self.profiles.contains_key("default").then_some("default")
    }

    /// The named profile, or the default one; the error says what exists.
    pub fn get(&self, name: Option<&str>) -> Result<(&str, &Broker), ProfileError> {
        let known = || self.profiles.keys().cloned().collect::<Vec<_>>();
        let Some(name) = name.or_else(|| self.default_name()) else {
            return Err(ProfileError::NoDefault {
                known: known(),
                config: self.config_file.clone(),
            });
        };
        self.profiles
            .get_key_value(name)
            .map(|(name, broker)| (name.as_str(), broker))
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                known: known(),
                config: self.config_file.clone(),
            })
    }

    /// The profiles whose chain of `subject_profile`s reaches `name`,
    /// farthest first: the ones to log out before it.
    pub fn built_on(&self, name: &str) -> Vec<String> {
        let reaches = |start: &str| {
            let mut profile = start.to_owned();
            let mut steps = 0;
            while let Some(subject) =
                (self.settings.get(&profile)).and_then(|config| config.subject_profile.clone())
            {
                steps += 1;
                if subject == name {
                    return Some(steps);
                }
                profile = subject;
                if steps > self.settings.len() {
                    break;
                }
            }
            None
        };
        let mut found: Vec<(usize, String)> = (self.settings.keys())
            .filter_map(|profile| reaches(profile).map(|steps| (steps, profile.clone())))
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found.into_iter().map(|(_, profile)| profile).collect()
    }

    /// Every profile, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Broker)> {
        self.profiles
            .iter()
            .map(|(name, broker)| (name.as_str(), broker))
    }

    /// How many profiles.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// No profile at all.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}
