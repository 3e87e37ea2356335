//! The sh and Rust example plugins in plugins/examples/, each run through
//! the real host (`authplug_protocol::host::run`) and through `authplug
//! check`, and `authplug run`'s and `check`'s own behaviour. The
//! refresh-token examples (Python, Go, Node) are `refresh_examples.rs`'s.

use std::path::PathBuf;
use std::process::Output;

use authplug_protocol::host::{run, PluginCommand, RunError};
use authplug_protocol::State;
use authplug_tests::host_options::{epithet_options, expires_in, options};
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
