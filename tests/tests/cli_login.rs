//! The example plugin for a server-mediated CLI login
//! (plugins/examples/python/cli_login.py) against a stand-in server
//! (scripts/standins/cli_login_server.py) that runs a real PKCE login at the
//! dev IdP, hands out one-time grants and session tokens that expire and
//! can be revoked, and guards an API that answers 401 to a stale token.
//!
//! - Through the agent: one browser login; the token from memory after;
//!   a revoked session token is healed by a new login only when the caller
//!   may log in, and a quiet caller gets a clear error and no browser.
//! - A session about to end is not handed out again: a new login.
//! - A login nobody finishes ends at the server's deadline.

mod oidc_support;

use std::path::Path;
use std::process::Output;

use authplug_tests::standins::Standin;
use oidc_support::{
    authplug_at as authplug, start_agent_with_config, stderr, unix_now, DevIdp, LoggedDriver,
};

fn plugin_argv(server: &Standin, browser: &str) -> Vec<String> {
    [
        "python3",
        &authplug_tests::workspace()
            .join("plugins/examples/python/cli_login.py")
            .display()
            .to_string(),
        "--server",
        &server.url,
        "--browser-command",
        browser,
        "--login-timeout",
        "20",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The API answers 200 to `token`.
async fn api_takes(server: &Standin, token: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{}/api/me", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers")
        .status()
        .is_success()
}

async fn token(socket: &Path, extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["token", "--profile", "edge"];
    args.extend(extra);
    let output = authplug(socket, &args).await;
    if output.status.success() {
        Ok(String::from_utf8(output.stdout)
            .unwrap()
            .trim_end()
            .to_owned())
    } else {
        Err(stderr(&output))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_then_memory_and_a_revoked_session_heals_only_when_interactive() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let driver = LoggedDriver::http(&[]);
    let server = Standin::start(
        "cli_login_server.py",
        &[&idp.issuer, "--session-ttl", "600"],
    );
    let dir = tempfile::tempdir().unwrap();
    let command =
        serde_json::to_string(&shell_words::join(plugin_argv(&server, &driver.command))).unwrap();
    let (_agent, socket) = start_agent_with_config(
        dir.path(),
        &format!("[profiles.edge]\ncommand = {command}\ntimeout = 30\n"),
    )
    .await;

    let first = token(&socket, &[]).await.expect("the first login");
    assert!(first.starts_with("mcs_"), "{first}");
    assert!(api_takes(&server, &first).await);
    assert_eq!(driver.logins(), 1);
    let again = token(&socket, &["--non-interactive"])
        .await
        .expect("from memory");
    assert_eq!(again, first);
    let stats = server.stats().await;
    assert_eq!(
        (stats["initiated"].as_u64(), stats["exchanges"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );

    let status = authplug(&socket, &["status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let expires_at = status[0]["expires_at"]
        .as_i64()
        .expect("the session's expiry reached the agent");
    let now = unix_now();
    assert!(
        (now + 590..=now + 601).contains(&expires_at),
        "{expires_at} vs {now}"
    );

    // The server revokes the session; the API refuses the token.
    server.hook("revoke").await;
    assert!(!api_takes(&server, &first).await);
    let reject = authplug(&socket, &["reject", "--profile", "edge", "--current"]).await;
    assert!(reject.status.success(), "{}", stderr(&reject));
    let refused = authplug(
        &socket,
        &["token", "--profile", "edge", "--non-interactive"],
    )
    .await;
    assert_eq!(
        refused.status.code(),
        Some(4),
        "a login is needed, by its exit code"
    );
    let quiet = token(&socket, &["--non-interactive"])
        .await
        .expect_err("a quiet caller may not log in");
    assert!(
        quiet.contains("the server refused the session token")
            && quiet.contains("run `authplug token`"),
        "{quiet}"
    );
    assert_eq!(driver.logins(), 1, "no browser for a quiet caller");

    let healed = token(&socket, &[]).await.expect("a new login");
    assert_ne!(healed, first);
    assert!(api_takes(&server, &healed).await);
    assert_eq!(driver.logins(), 2);
}

/// `authplug run` of the plugin with a state file (an experiment's, not a
/// broker's way).
fn run(server: &Standin, browser: &str, state: &Path, reason: &str) -> Output {
    std::process::Command::new(authplug_tests::authplug_binary())
        .args(["run", "--any-reason", "--reason", reason, "--state-in"])
        .arg(state)
        .arg("--state-out")
        .arg(state)
        .arg("--")
        .args(plugin_argv(server, browser))
        .output()
        .expect("authplug run runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_handed_out_again_until_it_nears_its_end() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let driver = LoggedDriver::http(&[]);
    let lasting = Standin::start(
        "cli_login_server.py",
        &[&idp.issuer, "--session-ttl", "600"],
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lasting");
    std::fs::write(&state, "").unwrap();
    let first = run(&lasting, &driver.command, &state, "initial");
    assert!(first.status.success(), "{}", stderr(&first));
    for reason in ["refresh", "some-newer-reason"] {
        let again = run(&lasting, &driver.command, &state, reason);
        assert!(again.status.success(), "{}", stderr(&again));
        assert_eq!(again.stdout, first.stdout, "{reason}: the held session");
    }
    let rejected = run(&lasting, &driver.command, &state, "rejected");
    assert!(rejected.status.success(), "{}", stderr(&rejected));
    assert_ne!(
        rejected.stdout, first.stdout,
        "a refused session is replaced"
    );
    assert_eq!(driver.logins(), 2);

    // Shorter than the plugin's 30-second margin: never handed out again.
    let driver = LoggedDriver::http(&[]);
    let server = Standin::start("cli_login_server.py", &[&idp.issuer, "--session-ttl", "20"]);
    let state = dir.path().join("state");
    std::fs::write(&state, "").unwrap();
    let first = run(&server, &driver.command, &state, "initial");
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(std::fs::read_to_string(&state).unwrap().contains("mcs_"));
    let second = run(&server, &driver.command, &state, "refresh");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("logging in"),
        "{}",
        stderr(&second)
    );
    assert_ne!(first.stdout, second.stdout);
    assert_eq!(driver.logins(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_nobody_finishes_ends_at_the_servers_deadline() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let server = Standin::start("cli_login_server.py", &[&idp.issuer, "--login-ttl", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "").unwrap();
    // A browser that opens nothing: nobody logs in.
    let output = run(&server, "true", &state, "initial");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("not finished in time"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "",
        "the state is untouched"
    );
    let stats = server.stats().await;
    assert!(stats["polls"].as_u64().unwrap() >= 1, "it polled: {stats}");
    assert_eq!(stats["exchanges"], 0);
}
