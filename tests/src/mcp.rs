//! A real MCP server and client (the MCP Python SDK, installed by
//! `scripts/setup` into `scripts/mcp/.venv`): `scripts/mcp/server.py`
//! accepts only an issuer's JWTs for an audience, as an OIDC-protected MCP
//! server does; `scripts/mcp/client.py` runs steps in one MCP session.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::workspace;

/// The virtual environment's Python.
pub fn python() -> PathBuf {
    let python = workspace().join("scripts/mcp/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup",
        python.display()
    );
    python
}

/// A running MCP server; stopped when dropped (its stdin closes).
pub struct McpServer {
    /// Its endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl McpServer {
    /// Accepts JWTs of `issuer` for `audience` that carry `scope`.
    pub fn start(issuer: &str, audience: &str, scope: &str) -> McpServer {
        let mut child = Command::new(python())
            .arg(workspace().join("scripts/mcp/server.py"))
            .args([issuer, audience, scope])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the MCP server starts");
        let stdin = child.stdin.take();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("its ready line");
        let url = line
            .strip_prefix("URL ")
            .expect("a URL line")
            .trim()
            .to_owned();
        McpServer {
            url,
            child,
            _stdin: stdin,
        }
    }

    /// From now on the server refuses `token` (401), as told of a
    /// revocation.
    pub async fn revoke(&self, token: &str) {
        let origin = self.url.trim_end_matches("/mcp");
        let answer = reqwest::Client::new()
            .post(format!("{origin}/test/revoke"))
            .body(token.to_owned())
            .send()
            .await
            .expect("the revoke hook answers");
        assert!(answer.status().is_success());
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MCP client session running `steps`, whose JSON lines are read one
/// by one ([`McpClient::next`]); a `pause` step waits for
/// [`McpClient::resume`].
pub struct McpClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl McpClient {
    /// `client.py URL [--header H]... STEPS`.
    pub fn start(url: &str, headers: &[String], steps: &[&str]) -> McpClient {
        let mut command = Command::new(python());
        command
            .arg(workspace().join("scripts/mcp/client.py"))
            .arg(url);
        for header in headers {
            command.args(["--header", header]);
        }
        let mut child = command
            .args(steps)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the MCP client starts");
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        McpClient {
            child,
            stdin,
            lines,
        }
    }

    /// The next step's JSON line (panics after 60 s, or when the client
    /// ended without one).
    pub fn next(&self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the MCP client's next line");
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// Ends a `pause`.
    pub fn resume(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(b"\n").expect("resume the client");
        stdin.flush().expect("resume the client");
    }

    /// Waits for the client to exit; whether it succeeded.
    pub fn finish(mut self) -> bool {
        drop(self.stdin.take());
        self.child.wait().expect("the client exits").success()
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
