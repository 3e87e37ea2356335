//! `authplug exec` and `authplug token --header` against a real agent: the
//! token in one variable of the command's environment and never in its
//! argv, the command's exit status and signals its own, errors in words.

use std::os::unix::process::ExitStatusExt;

mod support;
use support::*;

fn exec(socket: &std::path::Path, args: &[&str]) -> std::process::Output {
    authplug()
        .arg("exec")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("authplug exec runs")
}

#[test]
fn exec_puts_the_token_in_the_environment_only_and_becomes_the_command() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);

    // The command sees the token in AUTHPLUG_TOKEN, and its own argv and
    // pid: `exec` replaced authplug, so `$PPID` is authplug's parent (this
    // test), and argv has no token.
    let output = exec(
        &agent.socket,
        &[
            "--",
            "sh",
            "-c",
            r#"echo "$AUTHPLUG_TOKEN"; cat /proc/$$/cmdline | tr '\0' ' '; echo; echo "$PPID""#,
        ],
    );
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "tok-1");
    assert!(
        !lines[1].contains("tok-1"),
        "no token in argv: {}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        std::process::id().to_string(),
        "authplug exec'd the command"
    );

    // Another variable, the same cached token.
    let output = exec(
        &agent.socket,
        &[
            "--env",
            "API_TOKEN",
            "--",
            "sh",
            "-c",
            "echo \"$API_TOKEN ${AUTHPLUG_TOKEN:-unset}\"",
        ],
    );
    assert_eq!(stdout(&output).trim(), "tok-1 unset");
    assert_eq!(scratch.runs("main").len(), 1);

    // Exit status and signals are the command's own.
    assert_eq!(
        exec(&agent.socket, &["--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let killed = exec(&agent.socket, &["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(
        killed.status.signal(),
        Some(nix::sys::signal::Signal::SIGTERM as i32)
    );

    // Errors, in words.
    let missing = exec(&agent.socket, &["--", "/nonexistent/tool"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot run /nonexistent/tool"));
    let bad_name = exec(&agent.socket, &["--env", "A=B", "--", "true"]);
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("is not a variable name"));
    let no_command = exec(&agent.socket, &[]);
    assert_eq!(no_command.status.code(), Some(2), "a usage error");
}

#[test]
fn token_header_prints_an_authorization_header() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let output = token_cli(&agent.socket, &["--header"]);
    assert_eq!(stdout(&output), "Authorization: Bearer tok-1\n");
}
