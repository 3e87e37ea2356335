//! AGENT-PROTOCOL.md, from a client in another language: the plain Python
//! client (tests/agent_client.py, standard library only) gets a token,
//! rejects it, gets the next one, reads the status and the errors, against
//! the real agent. And the document's claims that a client relies on.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod support;
use support::*;

fn python_client(socket: &Path, args: &[&str], stdin: &str) -> Output {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent_client.py");
    let mut child = Command::new("python3")
        .arg(client)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(stdin.as_bytes())
        .expect("stdin is written");
    child.wait_with_output().expect("the client ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_owned()
}

#[test]
fn a_python_client_gets_rejects_and_reads_the_status() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", &format!("echo 'signing in…' >&2\n{COUNTING}"));
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);

    let first = python_client(&agent.socket, &["token", "--profile", "main"], "");
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout), "tok-1");
    assert!(
        text(&first.stderr).contains("signing in…"),
        "the plugin's stderr is streamed: {}",
        text(&first.stderr)
    );

    let cached = python_client(&agent.socket, &["token", "--profile", "main"], "");
    assert_eq!(text(&cached.stdout), "tok-1", "served from the agent");
    assert_eq!(scratch.runs("main").len(), 1);

    // Compare-and-clear: an old token clears nothing, the cached one does.
    let stale = python_client(&agent.socket, &["reject", "--profile", "main"], "tok-0\n");
    assert!(stale.status.success());
    assert!(text(&stale.stderr).contains("nothing to clear"));
    let rejected = python_client(&agent.socket, &["reject", "--profile", "main"], "tok-1\n");
    assert!(rejected.status.success(), "{}", text(&rejected.stderr));
    assert_eq!(text(&rejected.stderr), "cleared");
    let next = python_client(
        &agent.socket,
        &["token", "--profile", "main", "--non-interactive"],
        "",
    );
    assert_eq!(text(&next.stdout), "tok-2");
    assert_eq!(scratch.runs("main"), ["initial", "rejected"]);

    let status = python_client(&agent.socket, &["status"], "");
    assert!(status.status.success(), "{}", text(&status.stderr));
    let profiles: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(profiles[0]["name"], "main");
    assert_eq!(profiles[0]["has_token"], true);
    assert_eq!(profiles[0]["runs"], 2);
    assert!(
        !text(&status.stdout).contains("tok-2"),
        "no token in the status"
    );

    // Logout: the plugin's `logout` run, then nothing held.
    let out = python_client(&agent.socket, &["logout", "--profile", "main"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The plugin's stderr, streamed, then the verdict.
    assert_eq!(text(&out.stderr), "signing in…\nlogged out");
    let status = python_client(&agent.socket, &["status"], "");
    let profiles: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(profiles[0]["has_token"], false);
    assert_eq!(profiles[0]["has_state"], false);
    assert_eq!(scratch.runs("main"), ["initial", "rejected", "logout"]);

    // Errors arrive in the agent's words.
    let unknown = python_client(&agent.socket, &["token", "--profile", "nope"], "");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no profile named `nope`"),
        "{}",
        text(&unknown.stderr)
    );
    let nobody = python_client(&scratch.path("none.sock"), &["status"], "");
    assert_eq!(nobody.status.code(), Some(1));
    assert!(text(&nobody.stderr).contains("start one with `authplug agent &`"));
}

/// What AGENT-PROTOCOL.md promises a client: several requests on one
/// connection, unknown members ignored, a request of another version told
/// so, each answer ending at the line with `ok`.
#[test]
fn the_documented_framing_holds() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":\"token\",\"profile\":\"main\",\"from_the_future\":[1]}\n");
    let answer = connection.final_answer();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["token"], "tok-1");
    connection.send(b"{\"v\":1,\"op\":\"reject\",\"token\":\"tok-1\"}\n");
    assert_eq!(connection.final_answer()["cleared"], true);
    connection.send(b"{\"v\":1,\"op\":\"status\"}\n");
    assert_eq!(connection.final_answer()["profiles"][0]["rejected"], true);
    connection.send(b"{\"v\":2,\"op\":\"token\"}\n");
    let other = connection.final_answer();
    assert_eq!(other["ok"], false);
    assert!(other["error"]
        .as_str()
        .expect("an error")
        .contains("speaks protocol version 1, not 2"));
    let document =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("AGENT-PROTOCOL.md"))
            .expect("AGENT-PROTOCOL.md");
    for limit in [
        format!(
            "at most {} connections",
            authplug_agent::server::MAX_CONNECTIONS
        ),
        format!(
            "within {} s",
            authplug_agent::server::IDLE_TIMEOUT.as_secs()
        ),
        format!(
            "{} MiB",
            authplug_agent::server::MAX_BUFFERED / (1024 * 1024)
        ),
        format!("every {} s", authplug_agent::server::HEARTBEAT.as_secs()),
        format!(
            "{} MiB + 64 KiB",
            (authplug_agent::wire::MAX_LINE - 64 * 1024) / (1024 * 1024)
        ),
        format!(
            "the last {} consumers",
            authplug_agent::server::MAX_CONSUMERS
        ),
    ] {
        assert!(
            document.contains(&limit),
            "AGENT-PROTOCOL.md says {limit:?}"
        );
    }
}
