//! Rule 7: a timeout, and on timeout or cancellation the whole process
//! group is stopped (TERM, grace, KILL) and reaped.

use std::time::Duration;

use authplug_protocol::host::{run, RunError};
use authplug_protocol::State;

use crate::support::{is_reaped, quick, wait_for_file, wait_until_gone, Scratch};

/// A plugin that never exits, with a child and a grandchild that do not
/// either; it records all three pids.
const NEVER_EXITS: &str = "echo $$ > \"$D/pid\"; \
    ( sleep 1000 & echo $! > \"$D/grandchild\"; wait ) & echo $! > \"$D/child\"; \
    sleep 1000";

#[tokio::test]
async fn a_plugin_that_never_exits_times_out_and_its_whole_group_dies() {
    let scratch = Scratch::new();
    let mut options = quick();
    options.timeout = Duration::from_secs(3);
    let error = run(&scratch.sh(NEVER_EXITS), &State::default(), &options)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::TimedOut { .. }), "{error:?}");
    assert!(
        error.to_string().contains("timed out after 3.0s"),
        "{error}"
    );
    let leader = scratch.read_pid("pid");
    assert!(is_reaped(leader), "the plugin itself is left as a zombie");
    for name in ["child", "grandchild"] {
        let pid = scratch.read_pid(name);
        assert!(
            wait_until_gone(pid, Duration::from_secs(5)).await,
            "{name} {pid} survived"
        );
    }
}

#[tokio::test]
async fn a_plugin_that_ignores_term_is_killed_after_the_grace() {
    let scratch = Scratch::new();
    let mut options = quick();
    options.timeout = Duration::from_millis(800);
    options.kill_grace = Duration::from_millis(200);
    let command = scratch.sh("trap '' TERM; echo $$ > \"$D/pid\"; while :; do sleep 0.05; done");
    let error = run(&command, &State::default(), &options)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::TimedOut { .. }), "{error:?}");
    assert!(is_reaped(scratch.read_pid("pid")));
}

#[tokio::test]
async fn dropping_the_run_cancels_it_and_kills_the_group() {
    let scratch = Scratch::new();
    let command = scratch.sh(NEVER_EXITS);
    let options = quick();
    let empty = State::default();
    let grandchild_file = scratch.path("grandchild");
    tokio::select! {
        result = run(&command, &empty, &options) => panic!("the plugin returned: {result:?}"),
        seen = wait_for_file(&grandchild_file, Duration::from_secs(10)) => assert!(seen),
    }
    // The run future is dropped here: cancellation.
    for name in ["pid", "child", "grandchild"] {
        let pid = scratch.read_pid(name);
        assert!(
            wait_until_gone(pid, Duration::from_secs(5)).await,
            "{name} {pid} survived"
        );
    }
}
