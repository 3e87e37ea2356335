//! Rule 8: the run ends when the plugin exits; a background child holding
//! stdout or fd 3 gets a short drain window, then its group is killed. One
//! holding only stdin or stderr holds nothing up.

use std::time::{Duration, Instant};

use authplug_protocol::host::{run, RunError};
use authplug_protocol::State;

use crate::support::{is_running, kill_leftover, quick, wait_until_gone, Scratch};

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
    assert!(error.to_string().contains("stdout or fd 3"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_helper_holding_only_stdin_and_stderr_is_neither_waited_for_nor_killed() {
    // The helper keeps the plugin's stdin (unread: the 4 MiB state cannot
    // all fit in the pipe) and stderr, but not stdout or fd 3. `exec 4<&0`
    // saves stdin, which sh gives background jobs as /dev/null otherwise.
    let state = State::new(vec![b's'; 4 * 1024 * 1024]);
    for helper in ["sleep", "setsid sleep"] {
        let scratch = Scratch::new();
        let command = scratch.sh(&format!(
            "echo 'before exit' >&2; exec 4<&0; \
             {helper} 1000 <&4 4<&- >/dev/null 3>&- & echo $! > \"$D/bg\"; \
             echo tok"
        ));
        let mut options = quick();
        options.timeout = Duration::from_secs(60);
        let result = run(&command, &state, &options).await;
        let helper_pid = scratch.read_pid("bg");
        let survived = is_running(helper_pid);
        kill_leftover(helper_pid);
        let output = result.unwrap_or_else(|e| panic!("{helper}: {e:?}"));
        assert_eq!(output.token.as_bytes(), b"tok", "{helper}");
        assert_eq!(output.stderr_tail, "before exit", "{helper}");
        assert!(survived, "{helper}: a helper holding no output was killed");
    }
}
