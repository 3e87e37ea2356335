//! Every token's lifetime, known to the agent and passed on: a plugin that
//! reports its opaque token's expiry on fd 4 (PROTOCOL.md rule 10) gets it
//! renewed in the background before it expires, with no 401 and no reject;
//! `authplug status`, `run` and `check` say what they know of it, and
//! `authplug token` run as a plugin passes it on to its own host.

use std::time::{Duration, Instant};

mod support;
use support::*;

/// `tok-N`, reported to expire `$DIR/lifetime` seconds from now (4 if the
/// file is missing).
const REPORTING: &str = r#"state=$(cat)
next=$(( ${state:-0} + 1 ))
printf '%s' "$next" >&3
lifetime=$(cat "$DIR/lifetime" 2>/dev/null || echo 4)
awk -v l="$lifetime" -v n="$(date +%s.%N)" 'BEGIN { printf "{\"expires_at\":%.3f}", n + l }' >&4
echo "tok-$next""#;

fn status_json(socket: &std::path::Path) -> serde_json::Value {
    let status = authplug()
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("status");
    serde_json::from_str(&stdout(&status)).expect("json")
}

fn wait_for(mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_opaque_token_is_renewed_before_it_expires_with_no_reject() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("api", REPORTING);
    let agent = Agent::start(&scratch.socket(), &[("api", &plugin)]);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-1\n");
    let profile = &status_json(&agent.socket)[0];
    assert!(profile["expires_at"].as_u64().is_some(), "{profile}");
    assert!(profile["refresh_ahead_at"].as_u64().is_some(), "{profile}");
    // Used since it was obtained: the agent renews it on its own.
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-1\n");
    wait_for(|| scratch.runs("api").len() == 2);
    assert_eq!(scratch.runs("api"), ["initial", "expiring"]);
    wait_for(|| status_json(&agent.socket)[0]["running"] == false);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    let last_run = &status_json(&agent.socket)[0]["last_run"];
    assert_eq!(last_run["background"], true, "{last_run}");
    assert_eq!(
        scratch.runs("api").len(),
        2,
        "no caller's own run, no reject"
    );

    let text = authplug()
        .args(["status", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("status");
    let text = stdout(&text);
    assert!(text.contains("renewed in the background in"), "{text}");
    assert!(text.contains("(expiring, in the background)"), "{text}");
}

#[test]
fn a_token_of_unknown_lifetime_says_so_in_status() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("api", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("api", &plugin)]);
    stdout(&token_cli(&agent.socket, &[]));
    let profile = &status_json(&agent.socket)[0];
    assert_eq!(profile["expires_at"], serde_json::Value::Null);
    let text = authplug()
        .args(["status", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("status");
    assert!(stdout(&text).contains("lifetime unknown"));
}

fn run_cli(plugin: &std::path::Path) -> std::process::Output {
    authplug()
        .args(["run", "--"])
        .arg(plugin)
        .output()
        .expect("authplug run")
}

fn check_cli(plugin: &std::path::Path) -> std::process::Output {
    authplug()
        .args(["check", "--non-interactive", "--"])
        .arg(plugin)
        .output()
        .expect("authplug check")
}

#[test]
fn run_says_when_the_token_expires_and_check_judges_what_the_plugin_reports() {
    let scratch = Scratch::new();
    std::fs::write(scratch.path("lifetime"), "600").unwrap();
    let reporting = scratch.plugin("reporting", REPORTING);
    let run = run_cli(&reporting);
    assert_eq!(stdout(&run), "tok-1\n");
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(
        said.contains("authplug: the token expires 20") && said.contains("as the plugin reported"),
        "{said}"
    );
    let check = check_cli(&reporting);
    let report = stdout(&check);
    assert!(
        report.contains("ok    token info on fd 4: the token expires 20"),
        "{report}"
    );

    let garbage = scratch.plugin(
        "garbage",
        "cat >/dev/null; printf 'expires soon' >&4; echo tok",
    );
    let run = run_cli(&garbage);
    assert_eq!(stdout(&run), "tok\n", "the run succeeds all the same");
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(
        said.contains("authplug: warning: the plugin's token info on fd 4 is not a JSON object"),
        "{said}"
    );
    assert!(said.contains("lifetime is unknown"), "{said}");
    let check = check_cli(&garbage);
    assert_eq!(check.status.code(), Some(1), "a conformance failure");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains("FAIL  the plugin's token info on fd 4 is not a JSON object"),
        "{report}"
    );

    let silent = scratch.plugin("silent", "cat >/dev/null; echo tok");
    let report = stdout(&check_cli(&silent));
    assert!(
        report.contains("note  fd 4 not used and the token is not a JWT"),
        "{report}"
    );
}

#[test]
fn authplug_token_as_a_plugin_passes_the_agents_expiry_on_to_its_host() {
    let scratch = Scratch::new();
    std::fs::write(scratch.path("lifetime"), "600").unwrap();
    let plugin = scratch.plugin("api", REPORTING);
    let agent = Agent::start(&scratch.socket(), &[("api", &plugin)]);
    let run = authplug()
        .args(["run", "--", &authplug_binary().display().to_string()])
        .args(["token", "--profile", "api", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("authplug run");
    assert_eq!(stdout(&run), "tok-1\n");
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(said.contains("as the plugin reported"), "{said}");
}

#[test]
fn authplug_token_as_a_plugin_rejects_its_token_after_a_refusal_but_not_when_asked_ahead() {
    let scratch = Scratch::new();
    std::fs::write(scratch.path("lifetime"), "600").unwrap();
    let plugin = scratch.plugin("api", REPORTING);
    let agent = Agent::start(&scratch.socket(), &[("api", &plugin)]);
    let state = scratch.path("host-state");
    let as_plugin = |reason: &str| {
        let run = authplug()
            .args(["run", "--reason", reason, "--state-in"])
            .arg(&state)
            .arg("--state-out")
            .arg(&state)
            .args(["--", &authplug_binary().display().to_string()])
            .args(["token", "--profile", "api", "--socket"])
            .arg(&agent.socket)
            .output()
            .expect("authplug run");
        stdout(&run)
    };
    assert_eq!(as_plugin("initial"), "tok-1\n");
    // A host refreshing ahead: the agent's token still works; nothing is
    // rejected, the agent's plugin does not run.
    assert_eq!(as_plugin("expiring"), "tok-1\n");
    assert_eq!(scratch.runs("api"), ["initial"]);
    // A host whose server refused it: rejected in the agent, a new one.
    assert_eq!(as_plugin("rejected"), "tok-2\n");
    assert_eq!(scratch.runs("api"), ["initial", "rejected"]);
}
