//! Rule 3: the token on stdout; one trailing newline removed; empty fails
//! (but a `logout` run, judged by its exit code);
//! over 1 MiB fails and the plugin is stopped.

use std::time::Duration;

use authplug_protocol::host::{run, RunError};
use authplug_protocol::{Reason, State, TOKEN_LIMIT};

use crate::support::{quick, run_sh, sh, wait_until_gone, Scratch};

async fn token_of(script: &str) -> Vec<u8> {
    run_sh(script, &State::default())
        .await
        .unwrap()
        .token
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn one_trailing_newline_is_removed_and_only_one() {
    assert_eq!(token_of("printf 'tok'").await, b"tok");
    assert_eq!(token_of("printf 'tok\\n'").await, b"tok");
    assert_eq!(token_of("printf 'tok\\r\\n'").await, b"tok");
    assert_eq!(token_of("printf 'tok\\n\\n'").await, b"tok\n");
    assert_eq!(token_of("printf 'tok\\r\\n\\r\\n'").await, b"tok\r\n");
    assert_eq!(token_of("printf 'tok\\r'").await, b"tok\r");
    assert_eq!(token_of("printf ' a b '").await, b" a b ");
}

#[tokio::test]
async fn a_logout_run_is_judged_by_its_exit_code_alone() {
    let mut options = quick();
    options.reason = Some(Reason::Logout);
    let done = run(&sh("echo revoked >&2"), &State::from("held"), &options)
        .await
        .expect("exit 0 and nothing printed is a logout that worked");
    assert!(done.token.as_bytes().is_empty());
    let failed = run(&sh("exit 4"), &State::from("held"), &options).await;
    assert!(
        matches!(failed, Err(RunError::Exited { code: 4, .. })),
        "{failed:?}"
    );
}

#[tokio::test]
async fn an_empty_token_fails() {
    for script in ["true", "printf '\\n'", "printf '\\r\\n'"] {
        let error = run_sh(script, &State::from("kept")).await.unwrap_err();
        assert!(
            matches!(error, RunError::EmptyToken { .. }),
            "{script}: {error:?}"
        );
        assert!(error.to_string().contains("no token"), "{error}");
    }
}

#[tokio::test]
async fn a_token_of_exactly_the_limit_is_accepted() {
    let script = format!("head -c {TOKEN_LIMIT} /dev/zero | tr '\\0' a");
    assert_eq!(token_of(&script).await.len(), TOKEN_LIMIT);
}

#[tokio::test]
async fn a_stdout_flood_fails_fast_and_the_plugin_is_stopped() {
    let scratch = Scratch::new();
    // `yes` never stops on its own; the marker shows the shell never got past it.
    let command = scratch.sh("echo $$ > \"$D/pid\"; yes; touch \"$D/marker\"");
    let mut options = quick();
    options.timeout = Duration::from_secs(60);
    let error = authplug_protocol::host::run(&command, &State::default(), &options)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::TokenTooLarge { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&TOKEN_LIMIT.to_string()),
        "{error}"
    );
    assert!(wait_until_gone(scratch.read_pid("pid"), Duration::from_secs(5)).await);
    assert!(!scratch.path("marker").exists());
}
