//! Rule 6: exit 0 is success; a code or a signal is failure, and says which.

use authplug_protocol::host::RunError;
use authplug_protocol::State;

use crate::support::run_sh;

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
