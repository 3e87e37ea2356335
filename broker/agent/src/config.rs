//! Profiles: the TOML config file and `--profile NAME=COMMANDLINE` flags.
//!
//! ```toml
//! default_profile = "work"
//!
//! [profiles.work]
//! command = "authplug-oidc --issuer https://id.example.com --client-id cli"
//! timeout = 300      # seconds for one plugin run (default 300, at most a day)
//! skew = 60          # refresh a JWT this many seconds before exp (default 60, at most a year)
//! cooldown = 60      # seconds without interactive runs after one failed (default 60, at most a day)
//! env = { AUTHPLUG_OIDC_CLIENT_SECRET = "..." }  # extra environment for the plugin
//! git_username = "oauth2"   # the username git-credential-authplug gives git (default oauth2)
//!
//! [profiles.registry]       # a login built on `work`'s: its plugin trades work's token
//! command = "authplug-exchange --format json --endpoint https://registry.example.com/v0/auth --json-field oidc_token"
//! subject_profile = "work"  # the plugin gets AUTHPLUG_SUBJECT_PROFILE=work; logging out work logs out registry
//!
//! [git.hosts]               # git-credential-authplug without --profile: host -> profile
//! "git.example.com" = "work"
//!
//! [mcp.servers]             # authplug mcp-headers without --profile: URL prefix -> profile
//! "https://mcp.example.com/" = "work"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::mcp_servers::McpConfig;
use crate::secret_file::{self, SecretFileError};
use authplug_broker::{Broker, BrokerOptions, PluginCommand};
use authplug_protocol::Secret;

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

#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
/// One profile: the plugin to run and how, and the settings of tools that
/// use its token. An edit of the former starts the login afresh, one of
/// the latter does not ([`ProfileConfig::same_login`]).
pub struct ProfileConfig {
    /// The plugin's command line, split by shell-word rules (no shell runs).
    /// A secret: it may hold a client secret.
    pub command: Secret<String>,
    /// Seconds for one plugin run.
    pub timeout: Option<f64>,
    /// Refresh a JWT this many seconds before its `exp`.
    pub skew: Option<f64>,
    /// Seconds without interactive runs after one failed.
    pub cooldown: Option<f64>,
    #[serde(default)]
    /// Extra environment for the plugin; the values may be secrets.
    pub env: BTreeMap<String, Secret<String>>,
    /// The username `git-credential-authplug` gives git with this
    /// profile's token (default `oauth2`).
    pub git_username: Option<String>,
    /// The profile whose token this profile's plugin trades for its own
    /// (`authplug-exchange`): passed to the plugin as
    /// `AUTHPLUG_SUBJECT_PROFILE`, and a logout of that profile logs this
    /// one out too. The chain may not loop.
    pub subject_profile: Option<String>,
}

impl std::fmt::Debug for ProfileConfig {
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
        f.debug_struct("ProfileConfig")
            .field("program", &program)
            .field("timeout", &self.timeout)
            .field("skew", &self.skew)
            .field("cooldown", &self.cooldown)
            .field("env_names", &self.env.keys().collect::<Vec<_>>())
            .field("git_username", &self.git_username)
            .field("subject_profile", &self.subject_profile)
            .finish_non_exhaustive()
    }
}

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

fn known_profiles(known: &[String], config: &Option<PathBuf>) -> String {
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

/// The agent's profiles, each with its broker.
#[derive(Debug, Default)]
pub struct Profiles {
    profiles: BTreeMap<String, Broker>,
    /// Of the profiles built from settings: what they were built from.
    settings: BTreeMap<String, ProfileConfig>,
    default: Option<String>,
    /// The config file, named in messages.
    config_file: Option<PathBuf>,
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
fn warn_if_shared(path: &Path, metadata: &std::fs::Metadata) {
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

fn check_name(name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Profile {
            name: name.to_owned(),
            message: "a profile name is 1 to 64 letters, digits, '-', '_' or '.'".into(),
        })
    }
}

const DAY: u64 = 24 * 60 * 60;

/// What a duration field may hold. The upper bounds are far past any sane
/// setting, and keep the times computed from them representable.
struct Bounds {
    positive: bool,
    max_secs: u64,
    max_text: &'static str,
}

const TIMEOUT: Bounds = Bounds {
    positive: true,
    max_secs: DAY,
    max_text: "a day",
};
const SKEW: Bounds = Bounds {
    positive: false,
    max_secs: 365 * DAY,
    max_text: "a year",
};
const COOLDOWN: Bounds = Bounds {
    positive: false,
    max_secs: DAY,
    max_text: "a day",
};

fn seconds(
    name: &str,
    field: &str,
    value: Option<f64>,
    default: Duration,
    bounds: Bounds,
) -> Result<Duration, ConfigError> {
    let Some(secs) = value else {
        return Ok(default);
    };
    let low = if bounds.positive { "above 0" } else { "from 0" };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !(bounds.positive && d.is_zero()))
        .filter(|d| *d <= Duration::from_secs(bounds.max_secs))
        .ok_or_else(|| ConfigError::Profile {
            name: name.to_owned(),
            message: format!(
                "{field} must be a number of seconds {low} to {} ({}), not {secs}",
                bounds.max_secs, bounds.max_text
            ),
        })
}

impl ProfileConfig {
    /// Whether `other` runs the same plugin the same way, so that a reload
    /// keeps the login: every field but the tools' own (`git_username`,
    /// which `git-credential-authplug` reads from the file itself).
    pub fn same_login(&self, other: &ProfileConfig) -> bool {
        let ProfileConfig {
            command,
            timeout,
            skew,
            cooldown,
            env,
            git_username: _,
            subject_profile,
        } = self;
        *command == other.command
            && *timeout == other.timeout
            && *skew == other.skew
            && *cooldown == other.cooldown
            && *env == other.env
            && *subject_profile == other.subject_profile
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

/// The variable that tells a plugin the profile whose token it trades.
pub const ENV_SUBJECT_PROFILE: &str = "AUTHPLUG_SUBJECT_PROFILE";

/// Whether a command line passes `--subject-profile` itself.
fn names_a_subject(command: &PluginCommand) -> bool {
    (command.arguments().iter()).any(|argument| {
        let argument = argument.to_string_lossy();
        argument == "--subject-profile" || argument.starts_with("--subject-profile=")
    })
}

/// The profiles `name`'s login is built on, nearest first (the chains are
/// known to end: [`check_chains`]).
fn chain<'a>(
    settings: &'a BTreeMap<String, ProfileConfig>,
    name: &str,
) -> impl Iterator<Item = &'a str> {
    let mut next = settings
        .get(name)
        .and_then(|config| config.subject_profile.as_deref());
    std::iter::from_fn(move || {
        let link = next?;
        next = settings
            .get(link)
            .and_then(|config| config.subject_profile.as_deref());
        Some(link)
    })
    .take(settings.len())
}

/// Every `subject_profile` names another profile, and no chain comes back
/// to where it started (that login would wait for itself).
fn check_chains(settings: &BTreeMap<String, ProfileConfig>) -> Result<(), ConfigError> {
    for (name, config) in settings {
        let mut chain = vec![name.as_str()];
        let mut next = config.subject_profile.as_deref();
        while let Some(subject) = next {
            let Some(subject_config) = settings.get(subject) else {
                return Err(ConfigError::Profile {
                    name: chain[chain.len() - 1].to_owned(),
                    message: format!("subject_profile `{subject}` is not one of the profiles"),
                });
            };
            chain.push(subject);
            if subject == name {
                return Err(ConfigError::Profile {
                    name: name.clone(),
                    message: format!(
                        "subject_profile makes a loop ({}): each login would wait for the next; end the chain at a profile that logs in by itself",
                        chain.join(" → ")
                    ),
                });
            }
            if chain.len() > settings.len() + 1 {
                // A loop further up the chain: reported from its own start.
                break;
            }
            next = subject_config.subject_profile.as_deref();
        }
    }
    Ok(())
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
        let mut add = |name: &str, config: &ProfileConfig| -> Result<(), ConfigError> {
            let kept = previous.and_then(|previous| {
                (previous.settings.get(name))
                    .is_some_and(|before| before.same_login(config))
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
            add(name, config)?;
        }
        for flag in flags {
            let (name, command) = flag
                .split_once('=')
                .ok_or_else(|| ConfigError::Flag(flag.clone()))?;
            check_name(name)?;
            let config = ProfileConfig {
                command: Secret::new(command.to_owned()),
                timeout: None,
                skew: None,
                cooldown: None,
                env: BTreeMap::new(),
                git_username: None,
                subject_profile: None,
            };
            add(name, &config)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let file: ConfigFile = toml::from_str(
            r#"
default_profile = "work"
[profiles.work]
command = "authplug-oidc --issuer https://id.example.com --client-id cli"
timeout = 300
skew = 60
cooldown = 60
env = { AUTHPLUG_OIDC_CLIENT_SECRET = "s" }
[profiles.ci]
command = "sh -c 'echo token'"
"#,
        )
        .expect("example config");
        let profiles = Profiles::build(&file, &["extra=echo hi".into()]).expect("profiles");
        assert_eq!(profiles.len(), 3);
        assert_eq!(profiles.default_name(), Some("work"));
        let (_, broker) = profiles.get(Some("ci")).expect("ci");
        assert_eq!(broker.command().arguments().len(), 2);
        let error = profiles.get(Some("nope")).unwrap_err();
        assert!(
            matches!(&error, ProfileError::Unknown { name, .. } if name == "nope"),
            "{error:?}"
        );
        assert!(error.to_string().contains("ci, extra, work"), "{error}");
    }

    #[test]
    fn debug_shows_env_names_but_no_values_nor_command_line() {
        let file: ConfigFile = toml::from_str(
            r#"
[profiles.work]
command = "/opt/bin/my-plugin --client-secret hunter2"
env = { AUTHPLUG_OIDC_CLIENT_SECRET = "s3cr3t" }
"#,
        )
        .expect("config");
        let shown = format!("{file:?}");
        assert!(
            shown.contains("AUTHPLUG_OIDC_CLIENT_SECRET") && shown.contains("my-plugin"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn bad_configs_say_what_to_fix() {
        let unknown_field =
            toml::from_str::<ConfigFile>("[profiles.a]\ncommand = \"x\"\ntimout = 3\n");
        assert!(unknown_field.unwrap_err().to_string().contains("timout"));
        let empty = ConfigFile::default();
        assert!(matches!(
            Profiles::build(&empty, &["noequals".into()]),
            Err(ConfigError::Flag(_))
        ));
        assert!(Profiles::build(&empty, &["bad name=x".into()]).is_err());
        assert!(Profiles::build(&empty, &["a=".into()]).is_err());
        for (field, value) in [
            ("skew", "-1"),
            ("skew", "4e7"),
            ("timeout", "0"),
            ("timeout", "86401"),
            ("cooldown", "1e19"),
            ("cooldown", "nan"),
            ("cooldown", "inf"),
        ] {
            let file: ConfigFile = toml::from_str(&format!(
                "[profiles.a]\ncommand = \"x\"\n{field} = {value}\n"
            ))
            .expect("parses");
            let message = Profiles::build(&file, &[]).unwrap_err().to_string();
            assert!(
                message.contains("profile `a`") && message.contains(field),
                "{field} = {value}: {message}"
            );
        }
        let edges: ConfigFile = toml::from_str(
            "[profiles.a]\ncommand = \"x\"\ntimeout = 86400\nskew = 0\ncooldown = 0\n",
        )
        .expect("parses");
        assert!(Profiles::build(&edges, &[]).is_ok());
    }

    /// The config file of README.md's "Config file" section, and this
    /// module's own example, as the agent would read them.
    #[test]
    fn the_documented_config_files_are_what_the_agent_reads() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("### Config file").expect("the section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("its end")];
        let module = include_str!("config.rs");
        let example: String = (module.lines())
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| {
                format!(
                    "{}\n",
                    line.trim_start_matches("//!").trim_start_matches(' ')
                )
            })
            .collect();
        for (name, text) in [("README.md", block), ("config.rs", example.as_str())] {
            let file = ConfigFile::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let profiles = Profiles::build(&file, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(profiles.built_on("work"), ["registry"], "{name}");
        }
    }

    fn chain(text: &str) -> Result<Profiles, String> {
        let file: ConfigFile = toml::from_str(text).expect("parses");
        Profiles::build(&file, &[]).map_err(|error| error.to_string())
    }

    #[test]
    fn chains_of_subject_profiles_end_somewhere() {
        let profiles = chain(
            "[profiles.work]\ncommand = \"x\"\n\
             [profiles.registry]\ncommand = \"x\"\nsubject_profile = \"work\"\n\
             [profiles.tools]\ncommand = \"x\"\nsubject_profile = \"registry\"\n\
             [profiles.other]\ncommand = \"x\"\n",
        )
        .expect("a chain of three");
        assert_eq!(profiles.built_on("work"), ["tools", "registry"]);
        assert_eq!(profiles.built_on("registry"), ["tools"]);
        assert!(profiles.built_on("tools").is_empty());
        assert!(profiles.built_on("other").is_empty());
        let (_, registry) = profiles.get(Some("registry")).expect("registry");
        assert!(format!("{:?}", registry.options()).contains(ENV_SUBJECT_PROFILE));

        let missing =
            chain("[profiles.a]\ncommand = \"x\"\nsubject_profile = \"b\"\n").unwrap_err();
        assert!(
            missing.contains("`b` is not one of the profiles"),
            "{missing}"
        );
        let itself = chain("[profiles.a]\ncommand = \"x\"\nsubject_profile = \"a\"\n").unwrap_err();
        assert!(itself.contains("loop (a → a)"), "{itself}");
        let around = chain(
            "[profiles.a]\ncommand = \"x\"\nsubject_profile = \"b\"\n\
             [profiles.b]\ncommand = \"x\"\nsubject_profile = \"c\"\n\
             [profiles.c]\ncommand = \"x\"\nsubject_profile = \"a\"\n",
        )
        .unwrap_err();
        assert!(around.contains("loop (a → b → c → a)"), "{around}");
        let flagged = chain(
            "[profiles.work]\ncommand = \"x\"\n\
             [profiles.r]\ncommand = \"authplug-exchange --subject-profile=work\"\n",
        )
        .unwrap_err();
        assert!(flagged.contains("subject_profile = \"NAME\""), "{flagged}");
    }
}
