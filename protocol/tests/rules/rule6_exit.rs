//! Rule 6: exit 0 is success; a code or a signal is failure, and says which;
//! the code the host offers for "a login is needed" is that kind of failure.

use authplug_protocol::host::RunError;
use authplug_protocol::State;

use crate::support::{quick, run_sh, sh};

#[tokio::test]
async fn a_non_zero_exit_fails_with_its_code_and_stderr() {
    let error = run_sh(
        "echo 'login refused' >&2; echo tok; exit 42",
        &State::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 42, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("exit code 42") && message.contains("login refused"),
        "{message}"
    );
}

#[tokio::test]
async fn death_by_a_signal_fails_and_names_it() {
    let error = run_sh("echo tok; printf st >&3; kill -KILL $$", &State::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Signaled { signal: 9, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("SIGKILL"), "{error}");

    let error = run_sh("kill -SEGV $$", &State::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Signaled { signal: 11, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_offered_code_says_a_login_is_needed_and_keeps_the_state() {
    let script = "echo \"offered $AUTHPLUG_LOGIN_NEEDED_EXIT\" >&2; printf new >&3; exit 77";
    let error = run_sh(script, &State::new(b"old".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::LoginNeeded { .. }), "{error:?}");
    assert!(!error.has_new_state(), "what it wrote on fd 3 is discarded");
    let message = error.to_string();
    assert!(
        message.contains("a login is needed") && message.contains("offered 77"),
        "{message}"
    );

    // Not offered: neither the variable nor the meaning.
    let mut options = quick();
    options.offer_login_needed = false;
    let script = "echo \"offered [${AUTHPLUG_LOGIN_NEEDED_EXIT-}]\" >&2; exit 77";
    let error = authplug_protocol::host::run(&sh(script), &State::default(), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 77, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("offered []"), "{error}");
}
