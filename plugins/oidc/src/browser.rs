//! Opening the user's browser: in its own session, stdio on /dev/null,
//! without fd 3 (the SDK marked it close-on-exec) and without any
//! `AUTHPLUG_*` variable (a client secret among them), so it can neither
//! hold the host's pipes open, nor be killed with our process group, nor
//! pass a secret on to what it starts.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Whether a browser can plausibly be opened here (for `--flow auto`).
pub fn can_open(browser_command: Option<&str>) -> bool {
    if browser_command.is_some() || std::env::var_os("BROWSER").is_some_and(|b| !b.is_empty()) {
        return true;
    }
    let remote =
        std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_TTY").is_some();
    if remote {
        return false;
    }
    cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Starts the browser on `url` and returns without waiting for it.
pub fn open(url: &str, browser_command: Option<&str>) -> Result<(), BrowserError> {
    let explicit = match browser_command {
        Some(command) => Some(command.to_owned()),
        None => std::env::var("BROWSER").ok().filter(|b| !b.is_empty()),
    };
    if let Some(command_line) = explicit {
        let mut words =
            shell_words::split(&command_line).map_err(|error| BrowserError::BadCommand {
                command: command_line.clone(),
                error,
            })?;
        if words.is_empty() {
            return Err(BrowserError::EmptyCommand);
        }
        let program = words.remove(0);
        let mut command = Command::new(&program);
        command.args(words).arg(url);
        return spawn_detached(command).map_err(|source| BrowserError::Start { program, source });
    }
    let mut last_error = String::from("no opener known for this system");
    for command in open::commands(url) {
        let name = format!("{:?}", command.get_program());
        match spawn_detached(command) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = format!("{name}: {e}"),
        }
    }
    Err(BrowserError::NoOpener { last_error })
}

/// Why no browser was started (the URL is printed anyway).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// `--browser-command` (or `$BROWSER`) does not split into words.
    #[error("cannot parse the browser command {command:?}: {error}")]
    BadCommand {
        command: String,
        error: shell_words::ParseError,
    },
    #[error("the browser command is empty")]
    EmptyCommand,
    #[error("cannot start the browser command {program:?}: {source}")]
    Start { program: String, source: io::Error },
    /// None of the system's openers could be started.
    #[error("cannot open a browser ({last_error})")]
    NoOpener { last_error: String },
}

fn spawn_detached(mut command: Command) -> io::Result<()> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The browser lives long and starts other programs: none of the
    // protocol's variables, and no client secret
    // (AUTHPLUG_OIDC_CLIENT_SECRET), go with it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AUTHPLUG_") {
            command.env_remove(name);
        }
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
    let mut child = command.spawn()?;
    // Reap it when it exits, so no zombie outlives a long wait; a launcher
    // that fails is worth a word, since the URL is on stderr anyway.
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            if !status.success() {
                crate::messages::say(&format!("the browser command exited with {status}"));
            }
        }
    });
    Ok(())
}
