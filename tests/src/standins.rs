//! Stand-ins for services that are not identity providers, in Python
//! (scripts/standins/, run with scripts/mcp/.venv's Python and PyJWT):
//! `exchange_server.py` (an MCP-registry-style JSON exchange and an RFC 8693
//! STS, which trade the dev IdP's ID tokens for their own) and
//! `cli_login_server.py` (a server that runs the OIDC login itself and hands
//! a CLI a session token).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::workspace;

/// A running stand-in; stopped when dropped (its stdin closes).
pub struct Standin {
    /// Its origin, `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl Standin {
    /// Starts scripts/standins/`script` with `args`, once it is ready.
    pub fn start(script: &str, args: &[&str]) -> Standin {
        let mut child = Command::new(crate::mcp::python())
            .arg(workspace().join("scripts/standins").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the stand-in starts");
        let stdin = child.stdin.take();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("its ready line");
        let url = (line.strip_prefix("URL "))
            .unwrap_or_else(|| panic!("{script} printed no URL line, but {line:?}"))
            .trim()
            .to_owned();
        Standin {
            url,
            child,
            _stdin: stdin,
        }
    }

    /// Its counters (`GET /test/stats`).
    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/test/stats", self.url))
            .await
            .expect("the stats hook answers")
            .text()
            .await
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .expect("JSON stats")
    }

    /// A test hook (`POST /test/<hook>`).
    pub async fn hook(&self, hook: &str) {
        let answer = reqwest::Client::new()
            .post(format!("{}/test/{hook}", self.url))
            .send()
            .await
            .expect("the hook answers");
        assert!(answer.status().is_success(), "{hook}: {}", answer.status());
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
