//! What the agent's tests share: the binary, a scratch directory with
//! plugin scripts, an agent started and stopped by the test, a raw socket
//! client, and the CLI's token and reject commands.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn authplug_binary() -> PathBuf {
    // AUTHPLUG_TEST_BIN points the tests at another build of the binary.
    std::env::var_os("AUTHPLUG_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_authplug")))
}

pub fn authplug() -> Command {
    authplug_at(&authplug_binary())
}

pub fn authplug_at(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_remove("AUTHPLUG_SOCKET")
        .env_remove("AUTHPLUG_CONFIG")
        .env_remove("RUST_LOG");
    command
}

/// A scratch directory with a plugin script that logs each run's reason to
/// `runs` and runs `body`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn plugin(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        let script = format!(
            "#!/bin/sh\nDIR='{}'\necho \"$AUTHPLUG_REASON\" >> \"$DIR/{name}.runs\"\n{body}\n",
            self.dir.path().display()
        );
        std::fs::write(&path, script).expect("write plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    pub fn runs(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(&format!("{name}.runs")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn socket(&self) -> PathBuf {
        self.path("run/agent.sock")
    }
}

pub const COUNTING: &str = r#"state=$(cat)
next=$(( ${state:-0} + 1 ))
printf '%s' "$next" >&3
echo "tok-$next""#;

/// `authplug agent --config CONFIG --socket SOCKET`, with stdin and stdout
/// null and stderr inherited (callers redirect it as their test needs).
pub fn agent_command(config: &Path, socket: &Path) -> Command {
    let mut command = authplug();
    command
        .arg("agent")
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// An agent started by the test, stopped when dropped.
pub struct Agent {
    pub child: Child,
    pub socket: PathBuf,
}

impl Agent {
    pub fn start(socket: &Path, profiles: &[(&str, &Path)]) -> Agent {
        let mut command = agent_command(Path::new("/dev/null"), socket);
        for (name, plugin) in profiles {
            command
                .arg("--profile")
                .arg(format!("{name}={}", plugin.display()));
        }
        let child = command.spawn().expect("start agent");
        wait_for_socket(socket);
        Agent {
            child,
            socket: socket.to_owned(),
        }
    }

    pub fn connect(&self) -> Connection {
        Connection::open(&self.socket)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "agent did not listen on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw socket client, for sending what the CLI never would.
pub struct Connection {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Connection {
    pub fn open(socket: &Path) -> Connection {
        let stream = UnixStream::connect(socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Connection {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    pub fn answer(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read answer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("answer {line:?}: {e}"))
    }

    /// Skips progress lines.
    pub fn final_answer(&mut self) -> serde_json::Value {
        loop {
            let answer = self.answer();
            if answer.get("ok").is_some() {
                return answer;
            }
        }
    }
}

pub fn token_cli(socket: &Path, extra: &[&str]) -> Output {
    authplug()
        .arg("token")
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .output()
        .expect("run authplug token")
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "authplug failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

pub fn reject_cli(socket: &Path, token: &str) -> Output {
    let mut child = authplug()
        .arg("reject")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authplug reject");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write token");
    child.wait_with_output().expect("reject")
}

#[allow(unused_imports)]
pub use authplug_testkit::is_running;

/// Stops a background agent even when the test fails half-way.
pub struct StopAgent(pub PathBuf);

impl Drop for StopAgent {
    fn drop(&mut self) {
        let _ = authplug()
            .args(["stop", "--socket"])
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}
