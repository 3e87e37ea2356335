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

mod bounds;
mod chains;
mod file;
mod login;
mod profile;
mod profiles;

/// `[mcp.servers]`: which profile an MCP server gets.
pub use crate::mcp_servers::McpConfig;
pub use file::{ConfigError, ConfigFile, GitConfig, CONFIG_LIMIT};
pub use login::{LoginConfig, ENV_SUBJECT_PROFILE};
pub use profile::{ProfileConfig, ToolSettings};
pub use profiles::{ProfileError, Profiles};

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

    /// The config file of docs/agent.md's "Config file" section, and this
    /// module's own example, as the agent would read them.
    #[test]
    fn the_documented_config_files_are_what_the_agent_reads() {
        let readme = include_str!("../../../../docs/agent.md");
        let section = &readme[readme.find("## Config file").expect("the section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("its end")];
        let module = include_str!("mod.rs");
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
        for (name, text) in [
            ("docs/agent.md", block),
            ("config/mod.rs", example.as_str()),
        ] {
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
