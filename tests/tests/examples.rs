//! The example plugins in plugins/examples/, each run through the real host
//! (`authplug_protocol::host::run`) and through `authplug check`. The Python
//! plugin trades its refresh token at the dev IdP's token endpoint
//! (scripts/dev-idp, npm oidc-provider: the refresh_token grant, with
//! rotation), after a login there gave it its first refresh token.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use authplug_protocol::host::{run, PluginCommand, RunError, RunOptions};
use authplug_protocol::State;
use authplug_tests::idp::{login_http_command, DevIdp};
use authplug_tests::{authplug_binary, workspace, workspace_binary};

fn example(relative: &str) -> PathBuf {
    workspace().join("plugins/examples").join(relative)
}

fn authplug() -> PathBuf {
    authplug_binary()
}

fn rust_example() -> PathBuf {
    workspace_binary("authplug-example-plugin", "authplug-example-plugin")
}

fn options(env: &[(&str, &str)]) -> RunOptions {
    let mut options = RunOptions::default();
    options.timeout = Duration::from_secs(30);
    options.kill_grace = Duration::from_millis(300);
    options.drain_window = Duration::from_millis(300);
    options.interactive = false;
    options.env = env
        .iter()
        .map(|(key, value)| ((*key).into(), (*value).into()))
        .collect();
    options
}

/// Runs `authplug ARGS` with extra environment.
async fn authplug_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(authplug())
        .args(args)
        .env_remove("EXAMPLE_TOKEN")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("authplug runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `authplug check` passed, and said what it checked.
fn assert_conforms(output: &Output) {
    let report = text(&output.stdout);
    assert!(
        output.status.success(),
        "check failed:\n{report}\n{}",
        text(&output.stderr)
    );
    for expected in [
        "Run 1: empty state",
        "Run 2:",
        "ok    exit code 0",
        "ok    token on stdout",
        "conforms to the authplug protocol",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    assert!(!report.contains("FAIL"), "{report}");
}

/// A host that offers nothing authplug added to epithet's protocol: no
/// info channel (rule 10), no keep-state exit (rule 4).
fn epithet_options(env: &[(&str, &str)]) -> RunOptions {
    let mut options = options(env);
    options.offer_info = false;
    options.keep_state_on_failure = false;
    options
}

/// About `lifetime` from now (a second either way: whole seconds).
fn expires_in(at: Option<std::time::SystemTime>, lifetime: u64) -> bool {
    let now = std::time::SystemTime::now();
    at.and_then(|at| at.duration_since(now).ok())
        .is_some_and(|left| left.as_secs() + 2 >= lifetime && left.as_secs() <= lifetime)
}

#[tokio::test]
async fn the_sh_and_rust_examples_say_when_their_token_expires_and_only_to_a_host_that_asks() {
    let env = [("EXAMPLE_TOKEN", "tok"), ("EXAMPLE_EXPIRES_IN", "600")];
    for command in [shell_example(), PluginCommand::new(rust_example())] {
        let output = run(&command, &State::default(), &options(&env))
            .await
            .unwrap();
        assert!(
            expires_in(output.expires_at, 600),
            "{command}: {:?}",
            output.expires_at
        );
        assert_eq!(output.info_problem, None);
        // An epithet host: the same plugin, unchanged, says nothing.
        let output = run(&command, &State::default(), &epithet_options(&env))
            .await
            .unwrap();
        assert_eq!(
            (output.token.as_bytes(), output.state.as_bytes()),
            (&b"tok"[..], &b"1"[..])
        );
        assert_eq!(output.expires_at, None);
    }
}

// ---------------------------------------------------------------- shell

fn shell_example() -> PluginCommand {
    PluginCommand::new(example("shell/env-token.sh"))
}

#[tokio::test]
async fn the_shell_example_round_trips_its_state_through_the_host() {
    let env = [("EXAMPLE_TOKEN", "shell-token")];
    let first = run(&shell_example(), &State::default(), &options(&env))
        .await
        .unwrap();
    assert_eq!(first.token.as_bytes(), b"shell-token");
    assert_eq!(first.state.as_bytes(), b"1");
    assert!(first.stderr_tail.contains("run 1 (reason: initial)"));
    let second = run(&shell_example(), &first.state, &options(&env))
        .await
        .unwrap();
    assert_eq!(second.state.as_bytes(), b"2");
    assert!(second.stderr_tail.contains("run 2 (reason: refresh)"));
}

#[tokio::test]
async fn the_shell_example_reads_a_token_file_and_fails_clearly_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    let file = file.to_str().unwrap();
    let output = run(
        &shell_example(),
        &State::from("41"),
        &options(&[("EXAMPLE_TOKEN_FILE", file)]),
    )
    .await
    .unwrap();
    assert_eq!(output.token.as_bytes(), b"from-file");
    assert_eq!(output.state.as_bytes(), b"42");

    // Without a token it fails, saying what to set. (That the caller's state
    // survives a failure is `authplug run`'s test below: the file stays.)
    let error = run(&shell_example(), &State::from("41"), &options(&[]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("set EXAMPLE_TOKEN"), "{error}");
}

#[tokio::test]
async fn the_shell_example_passes_authplug_check() {
    let plugin = example("shell/env-token.sh");
    let output = authplug_cli(
        &["check", "--non-interactive", "--", plugin.to_str().unwrap()],
        &[("EXAMPLE_TOKEN", "shell-token")],
    )
    .await;
    assert_conforms(&output);
    let report = text(&output.stdout);
    assert!(report.contains("state on fd 3: 1 byte,"), "{report}");
    assert!(
        report.contains("env-token: run 2 (reason: refresh)"),
        "{report}"
    );
    assert!(
        report.contains(
            "ok    run 2 used its state: without it the plugin returned a different state"
        ),
        "{report}"
    );
    // It knows nothing of `logout`, which the protocol allows.
    assert!(
        report.contains(
            "note  on logout the plugin printed a token: it treats `logout` like `refresh`"
        ),
        "{report}"
    );
}

#[tokio::test]
async fn authplug_check_tells_a_plugin_that_fails_from_one_that_breaks_the_protocol() {
    let plugin = example("shell/env-token.sh");
    // No token configured: the example exits 1, with its reason. That is
    // its environment, not a protocol violation.
    let output = authplug_cli(&["check", "--", plugin.to_str().unwrap()], &[]).await;
    assert_eq!(output.status.code(), Some(3));
    let report = text(&output.stdout);
    assert!(
        report.contains("ERROR plugin failed with exit code 1")
            && report.contains("no protocol violation")
            && report.contains("Could not check the plugin"),
        "{report}"
    );
    assert!(!report.contains("does NOT conform"), "{report}");

    // Exit 0 and no token: that breaks rule 3.
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.sh");
    std::fs::write(
        &silent,
        "#!/bin/sh
exit 0
",
    )
    .unwrap();
    std::fs::set_permissions(&silent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let output = authplug_cli(&["check", "--", silent.to_str().unwrap()], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let report = text(&output.stdout);
    assert!(
        report.contains("FAIL  plugin exited successfully but printed no token")
            && report.contains("does NOT conform"),
        "{report}"
    );
}

#[tokio::test]
async fn authplug_run_keeps_state_files_private_and_untouched_on_failure() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    let plugin = example("shell/env-token.sh");
    let plugin = plugin.to_str().unwrap();
    let args = [
        "run",
        "--state-in",
        state_arg,
        "--state-out",
        state_arg,
        "--",
        plugin,
    ];

    let ok = authplug_cli(&args, &[("EXAMPLE_TOKEN", "tok")]).await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(ok.stdout, b"tok\n");
    // The plugin's stderr reaches the terminal.
    assert!(text(&ok.stderr).contains("env-token: run 1"));
    assert_eq!(std::fs::read(&state).unwrap(), b"1");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let ok = authplug_cli(&args, &[("EXAMPLE_TOKEN", "tok")]).await;
    assert!(ok.status.success());
    assert_eq!(std::fs::read(&state).unwrap(), b"2");

    let failed = authplug_cli(&args, &[]).await;
    assert!(!failed.status.success());
    assert!(failed.stdout.is_empty());
    let message = text(&failed.stderr);
    assert!(
        message.contains("authplug: plugin failed with exit code 1"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        b"2",
        "state kept on failure"
    );
    // Nothing else was left in the directory (no temporary files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn authplug_run_passes_reason_and_interactivity_and_enforces_its_timeout() {
    let script = r#"printf '%s/%s\n' "$AUTHPLUG_REASON" "$AUTHPLUG_INTERACTIVE""#;
    let output = authplug_cli(&["run", "--", "sh", "-c", script], &[]).await;
    assert_eq!(text(&output.stdout), "initial/1\n");
    let output = authplug_cli(
        &[
            "run",
            "--reason",
            "rejected",
            "--non-interactive",
            "--",
            "sh",
            "-c",
            script,
        ],
        &[],
    )
    .await;
    assert_eq!(text(&output.stdout), "rejected/0\n");

    let slow = authplug_cli(&["run", "--timeout", "0.5", "--", "sleep", "30"], &[]).await;
    assert!(!slow.status.success());
    let message = text(&slow.stderr);
    assert!(message.contains("plugin timed out after 0.5s"), "{message}");

    let missing = authplug_cli(&["run", "--", "/nonexistent/plugin"], &[]).await;
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("could not start plugin `/nonexistent/plugin`"));
}

// ----------------------------------------------------------------- rust

#[tokio::test]
async fn the_rust_example_round_trips_its_state_through_the_host() {
    let command = PluginCommand::new(rust_example());
    let env = [("EXAMPLE_TOKEN", "rust-token")];
    let first = run(&command, &State::default(), &options(&env))
        .await
        .unwrap();
    assert_eq!(first.token.as_bytes(), b"rust-token");
    assert_eq!(first.state.as_bytes(), b"1");
    assert!(first
        .stderr_tail
        .contains("run 1 (reason: initial, interactive: false)"));
    let second = run(&command, &first.state, &options(&env)).await.unwrap();
    assert_eq!(second.state.as_bytes(), b"2");

    let error = run(&command, &State::from("7"), &options(&[]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("error: set EXAMPLE_TOKEN"),
        "{error}"
    );
}

#[tokio::test]
async fn the_rust_example_passes_authplug_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "rust-file-token\n").unwrap();
    let plugin = rust_example();
    let output = authplug_cli(
        &["check", "--", plugin.to_str().unwrap()],
        &[("EXAMPLE_TOKEN_FILE", file.to_str().unwrap())],
    )
    .await;
    assert_conforms(&output);
    assert!(text(&output.stdout).contains("token on stdout: 15 bytes"));
}

// --------------------------------------------------------------- python

/// The dev IdP's public client, which may refresh (with rotation: each
/// refresh token works once and is replaced by a new one).
const CLIENT_ID: &str = "demo";

/// A dev IdP and a fresh refresh token from it, got the way a person gets
/// one: a login (authplug-oidc with the dev IdP's HTTP login driver as the
/// browser). Returns the IdP, its token endpoint and the refresh token.
async fn idp_with_refresh_token() -> (DevIdp, String, String) {
    idp_bent_with_refresh_token("{}").await
}

/// [`idp_with_refresh_token`], the dev IdP started with `config`.
async fn idp_bent_with_refresh_token(config: &str) -> (DevIdp, String, String) {
    let idp = DevIdp::start(config).expect("the dev IdP starts");
    let login = PluginCommand::new(workspace_binary("authplug-oidc", "authplug-oidc")).args([
        "--issuer",
        &idp.issuer,
        "--client-id",
        CLIENT_ID,
        "--flow",
        "browser",
        "--browser-command",
        &login_http_command(&[]),
        "--login-timeout",
        "20",
    ]);
    let mut login_options = options(&NO_PROXY);
    login_options.interactive = true;
    let output = run(&login, &State::default(), &login_options)
        .await
        .expect("a login at the dev IdP");
    let state: serde_json::Value =
        serde_json::from_slice(output.state.as_bytes()).expect("authplug-oidc's JSON state");
    let refresh_token = state["refresh_token"]
        .as_str()
        .expect("a refresh token in the state")
        .to_owned();
    let token_endpoint = format!("{}/token", idp.issuer);
    (idp, token_endpoint, refresh_token)
}

fn python_example(url: &str) -> PluginCommand {
    PluginCommand::new("python3")
        .arg(example("python/refresh_token.py"))
        .args(["--token-endpoint", url, "--client-id", CLIENT_ID])
}

/// Loopback traffic must not go through a proxy a developer has set.
const NO_PROXY: [(&str, &str); 2] = [("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1")];

fn refresh_token_in(state: &State) -> String {
    let state: serde_json::Value = serde_json::from_slice(state.as_bytes()).expect("JSON state");
    assert_eq!(
        state.as_object().map(|o| o.len()),
        Some(1),
        "only the refresh token is kept"
    );
    state["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_trades_and_rotates_its_refresh_token() {
    let (_idp, url, bootstrap) = idp_with_refresh_token().await;
    let command = python_example(&url);
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &bootstrap));

    let first = run(&command, &State::default(), &options(&env))
        .await
        .expect("the first refresh");
    let first_refresh = refresh_token_in(&first.state);
    assert_ne!(
        first_refresh, bootstrap,
        "the IdP rotated the refresh token"
    );

    // The dev IdP's expires_in, said on fd 4 (rule 10): its access tokens
    // live an hour.
    assert!(expires_in(first.expires_at, 3600), "{:?}", first.expires_at);
    assert_eq!(first.info_problem, None);

    // The state, not the bootstrap variable, is what the second run uses:
    // the bootstrap token is spent. Under an epithet host, which offers no
    // fd 4, it runs unchanged.
    let second = run(&command, &first.state, &epithet_options(&env))
        .await
        .expect("the second refresh");
    assert_ne!(second.token.as_bytes(), first.token.as_bytes());
    let second_refresh = refresh_token_in(&second.state);
    assert_ne!(second_refresh, first_refresh);

    // A stale refresh token (already rotated) is refused: a clear error,
    // and the plugin wrote no state (the host keeps the caller's).
    let error = run(&command, &first.state, &options(&NO_PROXY))
        .await
        .expect_err("a spent refresh token is refused");
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("invalid_grant") && message.contains("log in again"),
        "{message}"
    );
    // The refresh tokens are secrets: they never appear on stderr.
    for secret in [&bootstrap, &first_refresh, &second_refresh] {
        assert!(!message.contains(secret.as_str()), "{message}");
    }

    // The IdP took the reuse of a spent refresh token for theft and revoked
    // the whole grant (OAuth 2.0 Security BCP, refresh token reuse
    // detection): the newest one is refused as clearly.
    let error = run(&command, &second.state, &options(&NO_PROXY))
        .await
        .expect_err("the grant was revoked");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
}

/// An answer that rotated the refresh token but whose access token is
/// unusable: the run fails, and the new refresh token goes back to the
/// host (rule 4's keep-state exit), for the old one is spent. A host that
/// keeps no failed state (epithet) is told the login must be redone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_keeps_a_rotated_refresh_token_when_the_answer_fails() {
    let (_idp, url, bootstrap) =
        idp_bent_with_refresh_token(r#"{"bend":{"accessTokenUnusable":true}}"#).await;
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &bootstrap));
    let mut error = run(&python_example(&url), &State::default(), &options(&env))
        .await
        .expect_err("no usable access token");
    let message = error.to_string();
    assert!(
        message.contains("no usable access_token")
            && message.contains("the new refresh token is kept"),
        "{message}"
    );
    let kept = error
        .take_new_state()
        .expect("the rotated refresh token handed back");
    let rotated = refresh_token_in(&kept);
    assert_ne!(rotated, bootstrap);
    assert!(!message.contains(&rotated) && !message.contains(&bootstrap));

    // Under epithet, nothing can be kept: said plainly.
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &rotated));
    let error = run(
        &python_example(&url),
        &State::default(),
        &epithet_options(&env),
    )
    .await
    .expect_err("no usable access token");
    assert!(
        error
            .to_string()
            .contains("this host cannot keep it: log in again"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_fails_clearly_when_the_endpoint_is_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", "rt-0"));
    let error = run(&python_example(&url), &State::default(), &options(&env))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot reach the token endpoint"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_passes_authplug_check() {
    let (_idp, url, bootstrap) = idp_with_refresh_token().await;
    let script = example("python/refresh_token.py");
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &bootstrap));
    let output = authplug_cli(
        &[
            "check",
            "--non-interactive",
            "--",
            "python3",
            script.to_str().expect("a UTF-8 path"),
            "--token-endpoint",
            &url,
            "--client-id",
            CLIENT_ID,
        ],
        &env,
    )
    .await;
    assert_conforms(&output);
    let report = text(&output.stdout);
    assert!(report.contains("returned a new state"), "{report}");
    assert!(
        report.contains("run 2 printed a different token"),
        "{report}"
    );
    // Run 2 could only succeed by trading the rotated token from its state;
    // the control run, with only the spent bootstrap token, is refused.
    assert!(
        report.contains("ok    run 2 used its state: without it the plugin failed"),
        "{report}"
    );
}
