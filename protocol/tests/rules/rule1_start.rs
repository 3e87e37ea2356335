//! Rule 1: start from an argv, never a shell; the environment.

use authplug_protocol::host::{run, PluginCommand, RunError};
use authplug_protocol::{Reason, State};

use crate::support::{quick, run_sh, sh, Scratch};

#[tokio::test]
async fn the_argv_reaches_the_plugin_word_for_word_without_a_shell() {
    // `printf` gets every word as is: no globbing, no `$` expansion, no `;`.
    let command =
        PluginCommand::parse(r#"printf "%s|" 'two words' '$HOME' '*' "a;b" back\ slash"#).unwrap();
    let output = run(&command, &State::default(), &quick()).await.unwrap();
    assert_eq!(
        output.token.as_bytes(),
        b"two words|$HOME|*|a;b|back slash|"
    );
}

#[test]
fn command_lines_are_split_by_shell_word_rules() {
    let command = PluginCommand::parse(r#"plugin --name "a b" 'c d' e\ f"#).unwrap();
    assert_eq!(command.program(), "plugin");
    let args: Vec<_> = command
        .arguments()
        .iter()
        .map(|a| a.to_str().unwrap())
        .collect();
    assert_eq!(args, ["--name", "a b", "c d", "e f"]);
    let unbalanced = PluginCommand::parse("plugin 'oops").unwrap_err();
    assert!(unbalanced.to_string().contains("quotes"), "{unbalanced}");
    let empty = PluginCommand::parse("   ").unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
}

#[tokio::test]
async fn the_protocol_variables_arrive() {
    // The host's own environment arrives too: its PATH (set_var here would
    // race with the other tests' spawns, which read the environment).
    let script = r#"printf '%s/%s/%s/%s|%s' "$AUTHPLUG_PROTOCOL" "$AUTHPLUG_REASON" "$AUTHPLUG_INTERACTIVE" "$EXTRA" "$PATH""#;
    let path = std::env::var("PATH").expect("the tests run with a PATH");
    let mut options = quick();
    options.env.push(("EXTRA".into(), "added".into()));

    let first = run(&sh(script), &State::default(), &options).await.unwrap();
    assert_eq!(
        first.token.to_str(),
        Ok(&*format!("1/initial/1/added|{path}"))
    );

    let refresh = run(&sh(script), &State::from("s"), &options).await.unwrap();
    assert_eq!(
        refresh.token.to_str(),
        Ok(&*format!("1/refresh/1/added|{path}"))
    );

    options.reason = Some(Reason::Rejected);
    options.interactive = false;
    // The caller's variables replace the host's of the same name.
    options.env.push(("PATH".into(), "/usr/bin:/bin".into()));
    let rejected = run(&sh(script), &State::from("s"), &options).await.unwrap();
    assert_eq!(
        rejected.token.as_bytes(),
        b"1/rejected/0/added|/usr/bin:/bin"
    );

    // A host logging out (the broker's `logout`) says so.
    options.reason = Some(Reason::Logout);
    let logout = run(&sh(script), &State::from("s"), &options).await.unwrap();
    assert_eq!(logout.token.as_bytes(), b"1/logout/0/added|/usr/bin:/bin");
}

/// A refusing server's challenge goes with `rejected` only, and only when
/// it is short visible ASCII; otherwise the variable is not there at all.
#[tokio::test]
async fn the_challenge_arrives_with_rejected_only() {
    let script = r#"printf '%s|%s' "$AUTHPLUG_REASON" "${AUTHPLUG_CHALLENGE-unset}""#;
    let challenge = r#"Bearer error="insufficient_scope", scope="api admin""#;
    let mut options = quick();
    options.challenge = Some(challenge.to_owned());
    options.reason = Some(Reason::Rejected);
    let rejected = run(&sh(script), &State::from("s"), &options).await.unwrap();
    assert_eq!(
        rejected.token.to_str(),
        Ok(&*format!("rejected|{challenge}"))
    );

    // Any other reason: not passed on, though the caller set it.
    options.reason = Some(Reason::Refresh);
    let refresh = run(&sh(script), &State::from("s"), &options).await.unwrap();
    assert_eq!(refresh.token.as_bytes(), b"refresh|unset");

    // A hostile value (a newline, too long) is dropped.
    options.reason = Some(Reason::Rejected);
    for hostile in ["Bearer\nerror=x".to_owned(), "a".repeat(5000)] {
        options.challenge = Some(hostile);
        let dropped = run(&sh(script), &State::from("s"), &options).await.unwrap();
        assert_eq!(dropped.token.as_bytes(), b"rejected|unset");
    }
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_spawn_error() {
    let command = PluginCommand::new("/nonexistent/authplug-plugin");
    let error = run(&command, &State::default(), &quick())
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Spawn { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/authplug-plugin"),
        "{message}"
    );
    assert!(message.contains("is it installed"), "{message}");
}

#[tokio::test]
async fn a_file_that_is_not_executable_is_a_clear_spawn_error() {
    let scratch = Scratch::new();
    let path = scratch.path("plugin.sh");
    std::fs::write(&path, "#!/bin/sh\necho token\n").unwrap();
    let error = run(&PluginCommand::new(&path), &State::default(), &quick())
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Spawn { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("chmod +x"), "{message}");
}

#[tokio::test]
async fn epithet_style_plugins_that_ignore_everything_still_work() {
    // Reads nothing, uses no variable, writes no state.
    let output = run_sh("echo static-token", &State::from("old"))
        .await
        .unwrap();
    assert_eq!(output.token.as_bytes(), b"static-token");
}

#[tokio::test]
async fn a_plugin_file_still_open_for_writing_a_moment_starts_once_closed() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let path = scratch.path("fresh.sh");
    // As if an installer (or another thread's not-yet-exec'd child) still
    // held the file open for writing when the host starts it: ETXTBSY.
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"#!/bin/sh\necho fresh-token\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let closer = std::thread::spawn(move || {
        // Well within the host's patience (about 250 ms).
        std::thread::sleep(std::time::Duration::from_millis(2));
        drop(file);
    });
    let output = run(&PluginCommand::new(&path), &State::default(), &quick()).await;
    closer.join().unwrap();
    assert_eq!(output.unwrap().token.as_bytes(), b"fresh-token");

    // Held open for good: a clear spawn error, soon.
    let held = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let started = std::time::Instant::now();
    let error = run(&PluginCommand::new(&path), &State::default(), &quick())
        .await
        .unwrap_err();
    drop(held);
    assert!(matches!(error, RunError::Spawn { .. }), "{error:?}");
    assert!(error.to_string().contains("busy"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
