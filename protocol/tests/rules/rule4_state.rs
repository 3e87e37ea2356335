//! Rule 4: the new state on fd 3; kept exactly on success, untouched on
//! failure (unless the plugin exits with the code the host offered in
//! `AUTHPLUG_KEEP_STATE_EXIT` after writing one), cleared when nothing is
//! written; at most 10 MiB.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authplug_protocol::host::{run, RunError};
use authplug_protocol::{State, KEEP_STATE_EXIT_CODE, STATE_LIMIT};

use crate::support::{quick, run_sh, sdk_probe, wait_until_gone, Scratch};

/// Counts its runs in its state: `n` in, `n+1` out.
const COUNTER: &str = r#"n=$(cat); n=${n:-0}; printf '%s' $((n + 1)) >&3; echo "token-$n""#;

#[tokio::test]
async fn the_state_round_trips_across_two_runs() {
    let first = run_sh(COUNTER, &State::default()).await.unwrap();
    assert_eq!(first.token.as_bytes(), b"token-0");
    assert_eq!(first.state.as_bytes(), b"1");
    let second = run_sh(COUNTER, &first.state).await.unwrap();
    assert_eq!(second.token.as_bytes(), b"token-1");
    assert_eq!(second.state.as_bytes(), b"2");
}

#[tokio::test]
async fn the_state_is_kept_byte_for_byte_including_newlines_and_nul() {
    let script = r#"printf 'a\000b\n\r\n\n' >&3; echo t"#;
    let output = run_sh(script, &State::default()).await.unwrap();
    assert_eq!(output.state.as_bytes(), b"a\0b\n\r\n\n");
}

#[tokio::test]
async fn a_failure_discards_what_was_written_on_fd_3() {
    // Writes a new state, then fails. A failure carries no state (the
    // caller keeps its own): what was written is not handed back anywhere,
    // not even inside the error.
    let error = run_sh(
        "cat >/dev/null; printf 'garbage' >&3; echo tok; exit 7",
        &State::from("precious"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 7, .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("garbage"), "{shown}");
}

#[tokio::test]
async fn nothing_on_fd_3_clears_the_state() {
    let output = run_sh("cat >/dev/null; echo tok", &State::from("old"))
        .await
        .unwrap();
    assert!(output.state.is_empty());
    // Closing fd 3 without writing is the same.
    let output = run_sh("exec 3>&-; echo tok", &State::from("old"))
        .await
        .unwrap();
    assert!(output.state.is_empty());
}

#[tokio::test]
async fn exactly_10_mib_of_state_is_accepted() {
    let script = format!("head -c {STATE_LIMIT} /dev/zero | tr '\\0' s >&3; echo tok");
    let output = run_sh(&script, &State::default()).await.unwrap();
    assert_eq!(output.state.len(), STATE_LIMIT);
    assert!(output.state.as_bytes().iter().all(|&b| b == b's'));
}

#[tokio::test]
async fn one_byte_over_10_mib_fails_at_once_while_the_plugin_keeps_writing() {
    let scratch = Scratch::new();
    // Tries to write 20 MiB, then would leave a marker and linger.
    let command = scratch.sh(&format!(
        "echo $$ > \"$D/pid\"; head -c {} /dev/zero >&3; touch \"$D/marker\"; sleep 60; echo tok",
        2 * STATE_LIMIT
    ));
    let mut options = quick();
    options.timeout = Duration::from_secs(60);
    let started = Instant::now();
    let error = run(&command, &State::from("held"), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::StateTooLarge { limit, .. } if limit == STATE_LIMIT),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("10485760"),
        "the error names the limit: {message}"
    );
    // Not a speed assertion: the plugin would otherwise run for a minute.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(wait_until_gone(scratch.read_pid("pid"), Duration::from_secs(5)).await);
    assert!(
        !scratch.path("marker").exists(),
        "the plugin was not stopped"
    );
}

#[tokio::test]
async fn one_byte_over_10_mib_fails_even_when_the_plugin_then_exits() {
    let script = format!("head -c {} /dev/zero >&3; echo tok", STATE_LIMIT + 1);
    let error = run_sh(&script, &State::default()).await.unwrap_err();
    assert!(matches!(error, RunError::StateTooLarge { .. }), "{error:?}");
}

#[test]
fn an_sdk_plugin_run_by_hand_without_fd_3_still_prints_its_token() {
    // No host: fd 3 is closed, the variables are missing, stdin is empty.
    let probe = sdk_probe();
    let output = Command::new(probe.program())
        .env_remove("AUTHPLUG_INTERACTIVE")
        .env_remove("AUTHPLUG_REASON")
        .env_remove("AUTHPLUG_PROTOCOL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "child-fd3=clean reason=initial interactive=1 state=0\n"
    );
    // It had a state ("+") to keep and nowhere to put it: it says so.
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no state descriptor (fd 3)"), "{stderr}");
}

#[test]
fn an_sdk_plugin_run_by_hand_with_fd_3_open_read_only_keeps_it_untouched() {
    // Started by hand from a program that left fd 3 open for reading (an
    // older make's jobserver, a CI runner): no state descriptor either.
    let probe = sdk_probe();
    let output = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" 3</dev/null")
        .arg(probe.program())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("child-fd3="),
        "the token is printed"
    );
    assert!(stderr.contains("no state descriptor (fd 3)"), "{stderr}");
}

#[tokio::test]
async fn the_host_offers_to_keep_the_state_of_a_failed_run() {
    let output = run_sh(
        r#"printf '%s' "${AUTHPLUG_KEEP_STATE_EXIT-unset}""#,
        &State::default(),
    )
    .await
    .unwrap();
    assert_eq!(output.token.as_bytes(), b"75");
    assert_eq!(KEEP_STATE_EXIT_CODE, 75);

    // A host that cannot store such a state does not offer it.
    let mut options = quick();
    options.keep_state_on_failure = false;
    let command = crate::support::sh(r#"printf '%s' "${AUTHPLUG_KEEP_STATE_EXIT-unset}""#);
    let output = run(&command, &State::default(), &options).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"unset");
}

#[tokio::test]
async fn a_failure_with_the_offered_code_hands_back_exactly_what_was_written() {
    let script = r#"cat >/dev/null; printf 'rotated\000rt\n' >&3; echo "login needed" >&2; exit "$AUTHPLUG_KEEP_STATE_EXIT""#;
    let mut error = run_sh(script, &State::from("spent")).await.unwrap_err();
    assert!(error.has_new_state(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("updated state"), "{message}");
    assert!(message.contains("login needed"), "{message}");
    assert!(
        !format!("{error:?}").contains("rotated"),
        "Debug is redacted"
    );
    let state = error.take_new_state().expect("the new state");
    assert_eq!(state.as_bytes(), b"rotated\0rt\n");
    assert!(!error.has_new_state(), "taken once");
}

#[tokio::test]
async fn the_code_without_a_state_or_without_the_offer_is_an_ordinary_failure() {
    // Nothing written: nothing to keep, and a failure never clears.
    let error = run_sh("exit 75", &State::from("held")).await.unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 75, .. }),
        "{error:?}"
    );
    // Not offered: what an older plugin wrote before exiting 75 is
    // discarded, as for any failure.
    let mut options = quick();
    options.keep_state_on_failure = false;
    let command = crate::support::sh("printf new >&3; exit 75");
    let mut error = run(&command, &State::from("held"), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 75, .. }),
        "{error:?}"
    );
    assert!(error.take_new_state().is_none());
    // Another code, with the offer: discarded.
    let mut error = run_sh("printf new >&3; exit 74", &State::from("held"))
        .await
        .unwrap_err();
    assert!(error.take_new_state().is_none(), "{error:?}");
}

#[tokio::test]
async fn the_state_limit_holds_for_a_failed_run_too() {
    let script = format!(
        "head -c {} /dev/zero >&3; exit \"$AUTHPLUG_KEEP_STATE_EXIT\"",
        STATE_LIMIT + 1
    );
    let error = run_sh(&script, &State::default()).await.unwrap_err();
    assert!(matches!(error, RunError::StateTooLarge { .. }), "{error:?}");
}

#[tokio::test]
async fn the_sdk_fails_keeping_state_only_with_a_host_that_offers_it() {
    let command = sdk_probe().arg("--fail-keeping-state");
    let mut error = run(&command, &State::from("held"), &quick())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("fails on purpose"), "{error}");
    assert_eq!(error.take_new_state().expect("kept").as_bytes(), b"held+");

    let mut options = quick();
    options.keep_state_on_failure = false;
    let mut error = run(&command, &State::from("held"), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{error:?}"
    );
    assert!(error.take_new_state().is_none());
    assert!(
        error
            .to_string()
            .contains("does not keep the state of a failed run"),
        "the plugin says what was lost: {error}"
    );
}

#[test]
fn an_sdk_plugin_started_with_fd_3_closed_never_writes_its_state_into_a_file_it_opens() {
    // Started by hand with fd 3 closed, the plugin opens a log file during
    // its run: without the SDK's startup decision the log would get fd 3,
    // and the state (a refresh token, for a real plugin) would end up in it.
    let scratch = Scratch::new();
    let log = scratch.path("plugin.log");
    let probe = sdk_probe();
    let output = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3>&-; exec "$0" "$@""#)
        .arg(probe.program())
        .arg("--log-to")
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "log line\n");
    assert!(stderr.contains("no state descriptor (fd 3"), "{stderr}");
}

#[test]
fn an_sdk_plugin_never_writes_its_state_into_a_regular_file_on_fd_3() {
    // `plugin 3>somefile` by hand: a regular file is no host's state pipe.
    let scratch = Scratch::new();
    let file = scratch.path("fd3");
    let probe = sdk_probe();
    let output = Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$0" 3>"$F""#)
        .arg(probe.program())
        .env("F", &file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"");
    assert!(stderr.contains("no state descriptor (fd 3"), "{stderr}");
}
