//! `authplug setup`: a guided first run for one OpenID Connect provider.
//! It logs in once through `authplug-oidc`, shows what the provider says
//! about the user (the ID token's claims, never a token), writes the
//! profile into the config file (or shows it, with `--print`), and prints
//! how kubectl, git and curl use it.
//!
//! The config file is edited, not rewritten: comments, order and the
//! other profiles stay as they were. The profile is written before the
//! login so that the login happens in the agent, which keeps it (the first
//! `authplug token` needs no second login); if the login fails, the file
//! is put back exactly as it was (or removed, if there was none).

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use authplug_agent::config::{ConfigFile, Profiles};
use authplug_agent::paths;
use authplug_protocol::host::{PluginCommand, RunOptions};
use authplug_protocol::State;

use super::fail;
use super::run::{at_terminal, write_private_atomically, Failed};
use super::socket::SocketArg;
use super::token::TokenSource;

/// The OIDC plugin, installed beside `authplug`.
const OIDC_PROGRAM: &str = "authplug-oidc";

/// How long the login may take, as authplug-oidc's own default.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(330);

const EXAMPLES: &str = "\
Examples:
  # log in, write the profile `work`, print the kubectl, git and curl lines
  authplug setup --profile work --issuer https://id.example.com --client-id cli

  # an access token for an API (RFC 8707), shown rather than written
  authplug setup --print --issuer https://id.example.com --client-id cli -- --token access --resource https://api.example.com";

/// Log in once with authplug-oidc, see the claims, and write the profile
///
/// The profile's command is `authplug-oidc --issuer .. --client-id ..`
/// and the flags after `--`. The login happens in the agent (started if
/// none runs), which keeps it. On any failure the config file is left as
/// it was. A client secret belongs in the profile's `env`
/// (AUTHPLUG_OIDC_CLIENT_SECRET), not in its command line: add it by hand.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct SetupArgs {
    /// The provider's issuer URL (https; http only on loopback)
    #[arg(long)]
    pub issuer: String,
    /// The client id registered with the provider
    #[arg(long)]
    pub client_id: String,
    /// The profile to write
    #[arg(long, short = 'p', default_value = "default")]
    pub profile: String,
    /// Show the profile instead of writing it (the login is then not kept)
    #[arg(long)]
    pub print: bool,
    /// Replace a profile of the same name (its login is forgotten)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub socket: SocketArg,
    /// The config file to write
    /// [default: $XDG_CONFIG_HOME/authplug/config.toml]
    #[arg(long, env = "AUTHPLUG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More flags for authplug-oidc (`authplug-oidc --help`)
    #[arg(last = true, value_name = "OIDC FLAGS")]
    pub plugin_flags: Vec<String>,
}

pub fn run(args: SetupArgs) -> ExitCode {
    match set_up(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn set_up(args: &SetupArgs) -> Result<(), ExitCode> {
    if let Some(flag) = args
        .plugin_flags
        .iter()
        .find(|f| f.starts_with("--client-secret"))
    {
        return Err(fail(format!(
            "{flag} would put the secret in the config file's command line, seen by anyone who lists processes: \
             leave it out, then add `env = {{ AUTHPLUG_OIDC_CLIENT_SECRET = \"...\" }}` to the profile by hand"
        )));
    }
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => paths::default_config().map_err(fail)?,
    };
    let original = read_original(&config_path).map_err(fail)?;
    let program = oidc_program().map_err(fail)?;
    let mut argv = vec![
        program.display().to_string(),
        "--issuer".into(),
        args.issuer.clone(),
        "--client-id".into(),
        args.client_id.clone(),
    ];
    argv.extend(args.plugin_flags.iter().cloned());
    let command_line = shell_words::join(&argv);
    let edited = with_profile(
        original.as_deref(),
        &args.profile,
        &command_line,
        args.force,
    )
    .map_err(|e| fail(format!("{}: {e}", config_path.display())))?;

    let token = if args.print {
        log_in_here(&argv)?
    } else {
        write_config(&config_path, &edited).map_err(fail)?;
        let source = TokenSource {
            socket: args.socket.clone(),
            profile: Some(args.profile.clone()),
            non_interactive: false,
            // A setup is a login the user asked for, now.
            force: true,
            no_autostart: false,
            config: Some(config_path.clone()),
        };
        match source.fetch(None) {
            Ok(fetched) => fetched.token.expose_secret().clone(),
            Err(message) => {
                let restored = restore_config(&config_path, original.as_deref());
                return Err(fail(format!(
                    "the login failed: {message}\n{}",
                    match restored {
                        Ok(()) => format!("{} is as it was", config_path.display()),
                        Err(error) => format!(
                            "and {} could not be put back as it was ({error}): remove the profile `{}` by hand",
                            config_path.display(),
                            args.profile
                        ),
                    }
                )));
            }
        }
    };
    let token = zeroize::Zeroizing::new(token);

    show_claims(&token);
    if args.print {
        say!("\n# The profile, for {}:", config_path.display());
        say!("{}", profile_toml(&args.profile, &command_line));
        say!("# (this login is not kept: the first `authplug token` logs in again)");
    } else {
        say!(
            "\nWrote the profile `{}` to {}; the agent holds its login.",
            args.profile,
            config_path.display()
        );
    }
    print_snippets(&args.profile);
    Ok(())
}

/// The config file's text, `None` if there is none yet.
fn read_original(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not UTF-8 text: fix it first", path.display())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

/// `authplug-oidc` beside this program, else on `PATH`.
fn oidc_program() -> Result<PathBuf, String> {
    paths::companion_program(OIDC_PROGRAM).ok_or_else(|| {
        format!("no `{OIDC_PROGRAM}` beside authplug or on PATH: install it (scripts/install)")
    })
}

/// The config text with the profile added (or replaced, with `force`),
/// checked as the agent will read it.
fn with_profile(
    original: Option<&str>,
    name: &str,
    command_line: &str,
    force: bool,
) -> Result<String, String> {
    let mut document: toml_edit::DocumentMut = original
        .unwrap_or("")
        .parse()
        .map_err(|e| format!("it is not valid TOML ({e}); fix it first"))?;
    let profiles = document
        .entry("profiles")
        .or_insert_with(|| {
            let mut table = toml_edit::Table::new();
            table.set_implicit(true);
            toml_edit::Item::Table(table)
        })
        .as_table_mut()
        .ok_or("its `profiles` is not a table; fix it first")?;
    if profiles.contains_key(name) && !force {
        return Err(format!(
            "it already has a profile `{name}`: choose another --profile, or --force to replace it (its login is forgotten)"
        ));
    }
    let mut profile = toml_edit::Table::new();
    profile.insert("command", toml_edit::value(command_line));
    profiles.insert(name, toml_edit::Item::Table(profile));
    let text = document.to_string();
    let file = ConfigFile::parse(&text).map_err(|e| format!("the profile would not work: {e}"))?;
    Profiles::build(&file, &[]).map_err(|e| format!("the profile would not work: {e}"))?;
    Ok(text)
}

fn profile_toml(name: &str, command_line: &str) -> String {
    with_profile(None, name, command_line, false).unwrap_or_default()
}

/// Written whole or not at all, private (it may come to hold secrets).
fn write_config(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private_atomically(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn restore_config(path: &Path, original: Option<&str>) -> io::Result<()> {
    match original {
        Some(text) => write_private_atomically(path, text.as_bytes()),
        None => std::fs::remove_file(path),
    }
}

/// `--print`: the login here, not kept.
fn log_in_here(argv: &[String]) -> Result<String, ExitCode> {
    let command = PluginCommand::from_argv(argv).map_err(fail)?;
    let runtime = super::runtime().map_err(fail)?;
    let mut options = RunOptions::default();
    options.timeout = LOGIN_TIMEOUT;
    match at_terminal(&runtime, &command, &State::default(), options) {
        Ok(output) => Ok(String::from_utf8_lossy(output.token.as_bytes()).into_owned()),
        Err(Failed::Interrupted(code)) => Err(code),
        Err(Failed::Run(error)) => Err(fail(format!("the login failed: {error}"))),
    }
}

/// The token's claims (its signature was checked by authplug-oidc when it
/// is an ID token), never the token.
fn show_claims(token: &str) {
    match authplug_protocol::expiry::jwt_claims(token.as_bytes())
        .and_then(|claims| serde_json::to_string_pretty(&claims).ok())
    {
        Some(json) => {
            say!("Logged in. The token's claims (the token itself is not shown):");
            say!("{json}");
        }
        None => say!("Logged in. The token is opaque (not a JWT), so it has no claims to show."),
    }
}

fn print_snippets(profile: &str) {
    let quoted = shell_words::quote(profile);
    say!(
        "\n# kubectl: in your kubeconfig\n\
         users:\n\
         - name: {profile}\n  \
           user:\n    \
             exec:\n      \
               apiVersion: client.authentication.k8s.io/v1\n      \
               command: authplug\n      \
               args: [kubectl, --profile, {profile}]\n      \
               interactiveMode: IfAvailable\n"
    );
    say!(
        "# git: for each host (the token as git's credential)\n\
         git config --global credential.https://git.example.com.helper ''\n\
         git config --global --add credential.https://git.example.com.helper 'authplug --profile {quoted}'\n"
    );
    say!(
        "# curl and scripts\n\
         authplug token --profile {quoted} --header | curl -H @- https://api.example.com/\n\
         authplug exec --profile {quoted} -- ./script   # the token in $AUTHPLUG_TOKEN"
    );
}
