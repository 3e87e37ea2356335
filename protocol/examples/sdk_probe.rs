//! A plugin built on the SDK, used by the protocol's rule 9 tests.
//!
//! Its token reports what it saw: whether a child it starts inherits fd 3,
//! the reason, whether it may interact, and the size of the state it got.
//! Its new state is the old one plus `+`. With `--spawn-early` it starts the
//! child before the SDK protects fd 3 (the control case); with
//! `--spawn-while-building` it starts it while `plugin::main_with` builds
//! the plugin, which is after. With `--fail-keeping-state` it fails, asking
//! the host to keep that new state (rule 4). With `--log-to FILE` it opens
//! FILE during the run and writes a line to it. With `--expires-in SECS` it
//! says its token expires that many seconds from now (rule 10), and its
//! token also tells whether a child inherits fd 4.

use std::process::{Command, Stdio};

use authplug_protocol::plugin::{self, Plugin, Request, Response};
use authplug_protocol::State;

/// Starts `sh` and asks whether it has a descriptor 3.
fn child_sees_fd_3() -> Result<String, plugin::Error> {
    child_sees_fd(3)
}

/// Starts `sh` and asks whether it has descriptor `fd`.
fn child_sees_fd(fd: i32) -> Result<String, plugin::Error> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "if [ -e /proc/$$/fd/{fd} ]; then echo inherited; else echo clean; fi"
        ))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

struct Probe {
    early_answer: Option<String>,
}

impl Plugin for Probe {
    fn run(&mut self, request: Request) -> Result<Response, plugin::Error> {
        let child = match self.early_answer.take() {
            Some(answer) => answer,
            None => child_sees_fd_3()?,
        };
        let mut token = format!(
            "child-fd3={child} reason={} interactive={} state={}",
            request.reason,
            u8::from(request.interactive),
            request.state.len()
        );
        let expires_at = match flag_value("--expires-in") {
            Some(seconds) => {
                token.push_str(&format!(" child-fd4={}", child_sees_fd(4)?));
                let seconds: u64 = seconds.parse()?;
                Some(std::time::SystemTime::now() + std::time::Duration::from_secs(seconds))
            }
            None => None,
        };
        if let Some(path) = flag_value("--log-to") {
            // A log file opened mid-run, and left open until exit: started
            // with fd 3 closed, it would get that number.
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            std::io::Write::write_all(&mut log, b"log line\n")?;
            std::mem::forget(log);
        }
        let mut state = request.state.as_bytes().to_vec();
        state.push(b'+');
        if std::env::args().any(|arg| arg == "--fail-keeping-state") {
            return Err(plugin::fail_keeping_state(
                "the probe fails on purpose, after it got a new state",
                State::new(state),
            ));
        }
        Ok(Response::new(token, State::new(state)).expires_at(expires_at))
    }
}

/// The value after `flag` on the command line.
fn flag_value(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).cloned()
}

fn main() {
    if std::env::args().any(|arg| arg == "--spawn-while-building") {
        plugin::main_with(|| {
            Ok::<_, plugin::Error>(Probe {
                early_answer: Some(child_sees_fd_3()?),
            })
        })
    }
    let early_answer = if std::env::args().any(|arg| arg == "--spawn-early") {
        match child_sees_fd_3() {
            Ok(answer) => Some(answer),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1)
            }
        }
    } else {
        None
    };
    plugin::main(Probe { early_answer })
}
