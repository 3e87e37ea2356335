//! Rule 8: the run ends when the plugin exits; a background child holding
//! stdout or fd 3 gets a short drain window, then its group is killed.

use std::time::{Duration, Instant};

use authplug_protocol::host::{run, RunError};
use authplug_protocol::State;

use crate::support::{quick, wait_until_gone, Scratch};

#[tokio::test]
async fn a_background_child_holding_stdout_and_fd_3_does_not_hang_the_host() {
    let scratch = Scratch::new();
    // `sleep` inherits stdout and fd 3 and would hold them for 1000 s.
    let command = scratch.sh("sleep 1000 & echo $! > \"$D/bg\"; printf new-state >&3; echo tok");
    let mut options = quick();
    options.timeout = Duration::from_secs(60);
    let started = Instant::now();
    let output = run(&command, &State::default(), &options).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"tok");
    assert_eq!(output.state.as_bytes(), b"new-state");
    // Not a speed assertion: without the drain window this takes 60 s.
    assert!(started.elapsed() < Duration::from_secs(20));
    let background = scratch.read_pid("bg");
    assert!(wait_until_gone(background, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_child_that_left_the_group_still_cannot_hang_the_host() {
    let scratch = Scratch::new();
    // `setsid` puts it beyond the reach of the group kill.
    let command = scratch.sh("setsid sleep 1000 & echo $! > \"$D/bg\"; echo tok");
    let mut options = quick();
    options.timeout = Duration::from_secs(60);
    let started = Instant::now();
    let error = run(&command, &State::from("held"), &options)
        .await
        .unwrap_err();
    let escaped = scratch.read_pid("bg");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(escaped),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(
        matches!(error, RunError::LeakedDescriptors { .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
