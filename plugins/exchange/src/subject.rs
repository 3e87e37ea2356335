//! Where the subject token comes from: another profile of the agent
//! (through the `authplug` program, which also starts an agent if none
//! runs), or a command that prints one. The token lives for the run only.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use authplug_protocol::{Secret, Token};

use crate::config::Config;
use crate::Error;

/// `authplug`'s exit code for "a login is needed, and this command may
/// not start one" (README.md, "Exit codes").
const AUTHPLUG_LOGIN_NEEDED: i32 = 4;

/// A subject token longer than this is not one.
const SUBJECT_LIMIT: u64 = 1024 * 1024;

/// Variables of this run's host that are not for the programs it starts:
/// they would take them for their own host's.
const HOST_VARIABLES: &[&str] = &[
    "AUTHPLUG_REASON",
    "AUTHPLUG_INTERACTIVE",
    "AUTHPLUG_PROTOCOL",
    "AUTHPLUG_KEEP_STATE_EXIT",
    "AUTHPLUG_INFO_FD",
    "AUTHPLUG_CHALLENGE",
    "AUTHPLUG_LOGIN_NEEDED_EXIT",
    "AUTHPLUG_SUBJECT_PROFILE",
    "AUTHPLUG_EXCHANGE_CLIENT_SECRET",
];

/// Where the subject token comes from.
pub enum Subject {
    /// An agent profile, asked through `authplug`.
    Profile { name: String, authplug: PathBuf },
    /// A command that prints the token.
    Command(Vec<String>),
}

impl Subject {
    /// As the flags say.
    pub fn from_config(config: &Config) -> Result<Subject, Error> {
        if let Some(line) = &config.subject_command {
            let words = shell_words::split(line)
                .map_err(|e| format!("--subject-command is not a command line: {e}"))?;
            if words.is_empty() {
                return Err("--subject-command is empty".into());
            }
            return Ok(Subject::Command(words));
        }
        let name = config
            .subject_profile
            .clone()
            .ok_or("no subject token: give --subject-profile or --subject-command")?;
        let authplug = config.authplug.clone().unwrap_or_else(beside_this_program);
        Ok(Subject::Profile { name, authplug })
    }

    /// For messages: "profile `work`", "--subject-command".
    pub fn describe(&self) -> String {
        match self {
            Subject::Profile { name, .. } => format!("profile `{name}`"),
            Subject::Command(_) => "--subject-command".to_owned(),
        }
    }

    /// The subject token; `interactive` lets the subject profile log in
    /// if it must. Its program's messages go to stderr, and so to the user.
    pub fn fetch(&self, interactive: bool) -> Result<Token, Error> {
        let mut command = match self {
            Subject::Profile { name, authplug } => {
                let mut command = Command::new(authplug);
                command.args(["token", "--profile", name]);
                if !interactive {
                    command.arg("--non-interactive");
                }
                command
            }
            Subject::Command(words) => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]);
                command
            }
        };
        for name in HOST_VARIABLES {
            command.env_remove(name);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} to get {}'s token: {e}",
                    self.program(),
                    self.describe()
                )
            })?;
        // Room for any usual token, so that it is not copied while it grows.
        let mut output = Secret::new(Vec::with_capacity(16 * 1024));
        let read = (child.stdout.take()).map(|stdout| {
            stdout
                .take(SUBJECT_LIMIT + 1)
                .read_to_end(output.expose_secret_mut())
        });
        let status = child
            .wait()
            .map_err(|e| format!("lost {}: {e}", self.program()))?;
        if let (Subject::Profile { .. }, Some(AUTHPLUG_LOGIN_NEEDED)) = (self, status.code()) {
            // Passed on as such (PROTOCOL.md rule 6): the login to start is
            // the subject profile's, in a run that may interact.
            return Err(authplug_protocol::plugin::login_needed(format!(
                "{} needs a login first, which this run may not start; its message is above",
                self.describe()
            )));
        }
        if !status.success() {
            let why = match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_owned(),
            };
            return Err(format!(
                "cannot get {}'s token: {} failed ({why}); its message is above",
                self.describe(),
                self.program()
            )
            .into());
        }
        if !matches!(read, Some(Ok(_))) || output.expose_secret().len() as u64 > SUBJECT_LIMIT {
            return Err(format!(
                "{} printed no readable token for {}",
                self.program(),
                self.describe()
            )
            .into());
        }
        let text = std::str::from_utf8(output.expose_secret())
            .map_err(|_| format!("{}'s token is not UTF-8 text", self.describe()))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(format!(
                "{} printed an empty token for {}",
                self.program(),
                self.describe()
            )
            .into());
        }
        Ok(Token::from(text))
    }

    /// Tells the agent that `token` was refused, so that the next `fetch`
    /// gets a fresh one (compare-and-clear: a token the profile replaced
    /// meanwhile is left alone). A command has no one to tell.
    pub fn refused(&self, token: &Token) -> Result<(), Error> {
        let Subject::Profile { name, authplug } = self else {
            return Ok(());
        };
        let mut command = Command::new(authplug);
        command.args(["reject", "--profile", name]);
        for name in HOST_VARIABLES {
            command.env_remove(name);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} to report the refused token: {e}",
                    authplug.display()
                )
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A closed pipe shows in the exit status.
            let _ = stdin.write_all(token.as_bytes());
        }
        let status = child
            .wait()
            .map_err(|e| format!("lost {}: {e}", authplug.display()))?;
        if !status.success() {
            return Err(format!(
                "`authplug reject --profile {name}` failed ({status}); its message is above"
            )
            .into());
        }
        Ok(())
    }

    fn program(&self) -> String {
        match self {
            Subject::Profile { authplug, .. } => format!("`{} token`", authplug.display()),
            Subject::Command(words) => format!("`{}`", words[0]),
        }
    }
}

/// `authplug` beside this program (installed together), else on PATH.
fn beside_this_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("authplug")))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("authplug"))
}
