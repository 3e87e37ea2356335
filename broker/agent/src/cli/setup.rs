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

use std::io::{self, Write as _};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authplug_agent::config::{ConfigFile, Profiles};
use authplug_agent::paths;
use authplug_protocol::host::{PluginCommand, RunOptions};
use authplug_protocol::{Reason, State};

use super::fail;
use super::run::{at_terminal, write_private_atomically, Failed};
use super::shared_args::{ConfigArg, ProfileArg, SocketArg};
use super::token::TokenSource;

/// The OIDC plugin, installed beside `authplug`.
const OIDC_PROGRAM: &str = "authplug-oidc";

/// How long the login may take, as authplug-oidc's own default.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(330);

const EXAMPLES: &str = "\
Examples:
  # log in, write the profile `work`, print the kubectl, git and curl lines
  authplug setup --profile work --issuer https://id.example.com --client-id cli

  # an MCP server: its metadata names the provider (RFC 9728)
  authplug setup --profile tools --resource-url https://mcp.example.com/mcp

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
    #[arg(long, required_unless_present = "resource_url")]
    pub issuer: Option<String>,
    /// The client id registered with the provider [with --resource-url:
    /// registered at the server if it allows, RFC 7591]
    #[arg(long, required_unless_present = "resource_url")]
    pub client_id: Option<String>,
    /// A protected resource (an MCP server's URL) to log in for: its
    /// metadata (RFC 9728) names the provider; the profile prints the
    /// access token for it
    #[arg(long, value_name = "URL")]
    pub resource_url: Option<String>,
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
    // A symlinked config (dotfiles managers) is edited where it points.
    let config_path = std::fs::canonicalize(&config_path).unwrap_or(config_path);
    let original = read_original(&config_path).map_err(fail)?;
    let program = oidc_program().map_err(fail)?;
    let mut argv = vec![program.display().to_string()];
    for (flag, value) in [
        ("--resource-url", &args.resource_url),
        ("--issuer", &args.issuer),
        ("--client-id", &args.client_id),
    ] {
        if let Some(value) = value {
            argv.extend([flag.to_owned(), value.clone()]);
        }
    }
    argv.extend(args.plugin_flags.iter().cloned());
    let command_line = shell_words::join(&argv);
    let edited = with_profile(
        original.as_deref(),
        &args.profile,
        &command_line,
        args.force,
    )
    .map_err(|e| fail(format!("{}: {e}", config_path.display())))?;

    let replaced = args.force
        && original
            .as_deref()
            .is_some_and(|text| has_profile(text, &args.profile));
    let token = if args.print {
        log_in_here(&argv)?
    } else {
        write_config(&config_path, &edited, original.as_ref()).map_err(fail)?;
        // Ctrl-C or SIGTERM during the login: the file is put back first.
        let _restorer = restore_on_signal(config_path.clone(), original.clone());
        let source = TokenSource {
            socket: args.socket.clone(),
            target: ProfileArg {
                profile: Some(args.profile.clone()),
            },
            non_interactive: false,
            // A setup is a login the user asked for, now.
            force: true,
            no_autostart: false,
            config: ConfigArg {
                config: Some(config_path.clone()),
            },
        };
        match source.fetch(None) {
            Ok(fetched) => fetched.token.expose_secret().clone(),
            Err(message) => {
                let restored = restore_config(&config_path, original.as_ref());
                return Err(fail(format!(
                    "the login failed: {message}\n{}",
                    match restored {
                        Ok(()) if replaced => format!(
                            "{} is as it was, but the agent forgot the replaced profile's login meanwhile: `authplug token --profile {}` logs in again",
                            config_path.display(),
                            args.profile
                        ),
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
        say!("# (this login was not kept, and was ended at the provider: the first `authplug token` logs in again)");
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

/// The config file's text and mode, `None` if there is none yet.
fn read_original(path: &Path) -> Result<Option<Original>, String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o600);
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{} is not UTF-8 text: fix it first", path.display()))?;
            Ok(Some(Original { text, mode }))
        }
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
    // Without `default_profile` the default is the only profile, else the
    // one named `default`: adding one must not change which it is.
    let implicit_default = if profiles.len() == 1 {
        profiles.iter().next().map(|(key, _)| key.to_owned())
    } else {
        profiles
            .contains_key("default")
            .then(|| "default".to_owned())
    };
    let mut profile = toml_edit::Table::new();
    profile.insert("command", toml_edit::value(command_line));
    profiles.insert(name, toml_edit::Item::Table(profile));
    if let Some(default) = implicit_default.filter(|d| d != name) {
        if !document.contains_key("default_profile") {
            document.insert("default_profile", toml_edit::value(default));
        }
    }
    let text = document.to_string();
    let file = ConfigFile::parse(&text).map_err(|e| format!("the profile would not work: {e}"))?;
    Profiles::build(&file, &[]).map_err(|e| format!("the profile would not work: {e}"))?;
    Ok(text)
}

fn profile_toml(name: &str, command_line: &str) -> String {
    with_profile(None, name, command_line, false).unwrap_or_default()
}

/// The config file as it was: its text and mode.
#[derive(Clone)]
struct Original {
    text: String,
    mode: u32,
}

impl std::ops::Deref for Original {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

fn has_profile(text: &str, name: &str) -> bool {
    text.parse::<toml_edit::DocumentMut>()
        .ok()
        .and_then(|doc| {
            doc.get("profiles")?
                .as_table()
                .map(|t| t.contains_key(name))
        })
        .unwrap_or(false)
}

/// Written whole or not at all; a new file private (it may come to hold
/// secrets), an edited one keeping its mode.
fn write_config(path: &Path, text: &str, original: Option<&Original>) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_with_mode(path, text, original.map(|o| o.mode))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_with_mode(path: &Path, text: &str, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write_private_atomically(path, text.as_bytes())?;
    match mode {
        Some(mode) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        None => Ok(()),
    }
}

fn restore_config(path: &Path, original: Option<&Original>) -> io::Result<()> {
    match original {
        Some(original) => write_with_mode(path, &original.text, Some(original.mode)),
        None => std::fs::remove_file(path),
    }
}

/// While it lives, SIGINT or SIGTERM puts the config file back, then ends
/// this process as the signal would (the login in the agent is cancelled
/// as its client goes). Afterwards they only end it.
struct Restorer {
    armed: Arc<AtomicBool>,
}

impl Drop for Restorer {
    fn drop(&mut self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}

fn restore_on_signal(path: PathBuf, original: Option<Original>) -> Restorer {
    let armed = Arc::new(AtomicBool::new(true));
    let restorer = Restorer {
        armed: Arc::clone(&armed),
    };
    let _ = std::thread::Builder::new().spawn(move || {
        let Ok(runtime) = super::runtime() else {
            return;
        };
        runtime.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let code = tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            };
            if armed.load(Ordering::SeqCst) {
                let restored = restore_config(&path, original.as_ref());
                let _ = writeln!(
                    std::io::stderr(),
                    "authplug: interrupted; {}",
                    match restored {
                        Ok(()) => format!("{} is as it was", path.display()),
                        Err(error) => format!("{} could not be put back ({error})", path.display()),
                    }
                );
            }
            std::process::exit(code);
        });
    });
    restorer
}

/// `--print`: the login here, not kept.
fn log_in_here(argv: &[String]) -> Result<String, ExitCode> {
    let command = PluginCommand::from_argv(argv).map_err(fail)?;
    let runtime = super::runtime().map_err(fail)?;
    let mut options = RunOptions::default();
    options.timeout = LOGIN_TIMEOUT;
    let output = match at_terminal(&runtime, &command, &State::default(), options.clone()) {
        Ok(output) => output,
        Err(Failed::Interrupted(code)) => return Err(code),
        Err(Failed::Run(error)) => return Err(fail(format!("the login failed: {error}"))),
    };
    // Nothing keeps this login: its refresh token is revoked now rather
    // than left valid with nobody holding it.
    options.reason = Some(Reason::Logout);
    options.interactive = false;
    if let Err(Failed::Run(error)) = at_terminal(&runtime, &command, &output.state, options) {
        say_on_stderr!("authplug: warning: ending the shown login failed: {error}");
    }
    Ok(String::from_utf8_lossy(output.token.as_bytes()).into_owned())
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
    // A YAML string that is a name whatever the name (`yes`, `a:b`).
    let yaml = serde_json::to_string(profile).unwrap_or_default();
    say!(
        "\n# kubectl: in your kubeconfig\n\
         users:\n\
         - name: {yaml}\n  \
           user:\n    \
             exec:\n      \
               apiVersion: client.authentication.k8s.io/v1\n      \
               command: authplug\n      \
               args: [kubectl, --profile, {yaml}]\n      \
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

#[cfg(test)]
mod tests {
    use super::with_profile;

    #[test]
    fn an_added_profile_keeps_comments_order_and_the_default() {
        let original = "# mine\n[profiles.only]\ncommand = \"true\" # kept\n";
        let edited =
            with_profile(Some(original), "work", "authplug-oidc --issuer x", false).expect("added");
        assert!(
            edited.starts_with("default_profile = \"only\"\n# mine\n"),
            "{edited}"
        );
        assert!(edited.contains("command = \"true\" # kept"), "{edited}");
        assert!(
            edited.contains("[profiles.work]\ncommand = \"authplug-oidc --issuer x\""),
            "{edited}"
        );
        let refused = with_profile(Some(&edited), "work", "other", false).expect_err("exists");
        assert!(
            refused.contains("already has a profile `work`"),
            "{refused}"
        );
        let replaced = with_profile(Some(&edited), "work", "other", true).expect("forced");
        assert!(replaced.contains("command = \"other\""), "{replaced}");
        // An empty config: the one profile is the default, nothing written.
        let first = with_profile(None, "work", "cmd", false).expect("added");
        assert!(!first.contains("default_profile"), "{first}");
    }
}
