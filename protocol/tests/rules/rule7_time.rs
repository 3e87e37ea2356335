//! Rule 7: a timeout, and on timeout or cancellation the whole process
//! group is stopped (TERM, grace, KILL) and reaped.

use std::time::Duration;

use authplug_protocol::host::{run, PluginCommand, RunError, RunOptions};
use authplug_protocol::State;

use crate::support::{
    is_reaped, kill_leftover, process_state, quick, wait_for_file, wait_until_gone,
    wait_until_reaped, Scratch,
};

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
    for name in ["child", "grandchild"] {
        let pid = scratch.read_pid(name);
        assert!(
            wait_until_gone(pid, Duration::from_secs(5)).await,
            "{name} {pid} survived"
        );
    }
    // The plugin itself is the host's child: gone means reaped, not a zombie.
    let leader = scratch.read_pid("pid");
    assert!(
        wait_until_reaped(leader, Duration::from_secs(5)).await,
        "the plugin {leader} was not reaped (state {:?})",
        process_state(leader)
    );
}

#[tokio::test]
async fn cancelling_the_run_during_the_grace_still_kills_the_plugin() {
    let scratch = Scratch::new();
    let command = scratch.sh("trap '' TERM; echo $$ > \"$D/pid\"; while :; do sleep 0.05; done");
    let mut options = quick();
    options.timeout = Duration::from_millis(300);
    options.kill_grace = Duration::from_millis(1500);
    // Times out at 0.3 s, sends TERM (ignored), waits out the grace: the
    // caller gives up at 0.8 s, in the middle of it.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(800),
        run(&command, &State::default(), &options),
    )
    .await;
    assert!(gave_up.is_err(), "the run ended early: {gave_up:?}");
    let plugin = scratch.read_pid("pid");
    let reaped = wait_until_reaped(plugin, Duration::from_secs(5)).await;
    kill_leftover(plugin);
    assert!(
        reaped,
        "the plugin outlived a run cancelled during its grace"
    );
}

/// A plugin that moves itself out of its process group into the host's
/// (`setpgid`, which any process may do within its session) before it
/// writes its pid and sleeps: a signal to its group reaches nobody.
fn leaves_its_group(scratch: &Scratch, options: &mut RunOptions) -> PluginCommand {
    options
        .env
        .push(("D".into(), scratch.dir().as_os_str().to_owned()));
    PluginCommand::new("perl").arg("-e").arg(
        r#"setpgrp(0, getpgrp(getppid())) or die "setpgrp: $!";
           open(my $f, '>', "$ENV{D}/pid") or die "pid file: $!";
           print $f $$; close $f; sleep 1000"#,
    )
}

#[tokio::test]
async fn a_plugin_that_left_its_group_still_times_out_and_is_reaped() {
    let scratch = Scratch::new();
    let mut options = quick();
    // Long enough for perl to start and write its pid on a loaded machine
    // (500 ms was not, once in a parallel run).
    options.timeout = Duration::from_secs(3);
    options.kill_grace = Duration::from_millis(200);
    let command = leaves_its_group(&scratch, &mut options);
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        run(&command, &State::default(), &options),
    )
    .await;
    let plugin = scratch.read_pid("pid");
    kill_leftover(plugin);
    let error = result.expect("the host hung on a plugin out of its group");
    assert!(matches!(error, Err(RunError::TimedOut { .. })), "{error:?}");
    assert!(is_reaped(plugin), "state {:?}", process_state(plugin));
}

#[tokio::test]
async fn cancelling_a_plugin_that_left_its_group_still_stops_it() {
    let scratch = Scratch::new();
    let mut options = quick();
    let command = leaves_its_group(&scratch, &mut options);
    let empty = State::default();
    let pid_file = scratch.path("pid");
    tokio::select! {
        result = run(&command, &empty, &options) => panic!("the plugin returned: {result:?}"),
        seen = wait_for_file(&pid_file, Duration::from_secs(10)) => assert!(seen),
    }
    // A moment for the pid to be written whole.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let plugin = scratch.read_pid("pid");
    let reaped = wait_until_reaped(plugin, Duration::from_secs(5)).await;
    kill_leftover(plugin);
    assert!(reaped, "a cancelled plugin out of its group survived");
}

#[tokio::test]
async fn the_plugin_is_reaped_only_after_the_last_signal_to_its_group() {
    // The plugin exits at once; its background child holds stdout, so the
    // drain window ends with a KILL to the group. Until that KILL, the
    // exited plugin must stay a zombie: its unreaped pid keeps the group id
    // from being given to some other process in the meantime.
    let scratch = Scratch::new();
    let command = scratch.sh("sleep 1000 & echo $! > \"$D/bg\"; echo $$ > \"$D/pid\"; echo tok");
    let mut options = quick();
    options.drain_window = Duration::from_secs(1);
    let pid_file = scratch.path("pid");
    let watch = async {
        assert!(wait_for_file(&pid_file, Duration::from_secs(10)).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let plugin = scratch.read_pid("pid");
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match process_state(plugin) {
                Some('Z') => return (plugin, true),
                None => return (plugin, false),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        (plugin, false)
    };
    let empty = State::default();
    let (output, (plugin, seen_as_zombie)) = tokio::join!(run(&command, &empty, &options), watch);
    let output = output.unwrap();
    assert_eq!(output.token.as_bytes(), b"tok");
    assert!(
        seen_as_zombie,
        "the plugin was reaped before the drain window's KILL to its group"
    );
    assert!(is_reaped(plugin), "and reaped once the run is over");
    assert!(wait_until_gone(scratch.read_pid("bg"), Duration::from_secs(5)).await);
}

/// `RunOptions::session_terminal`: the plugin leads a session of its own
/// whose controlling terminal is the one given, so what it writes to
/// `/dev/tty` arrives there (what `authplug check` watches), it can read
/// from it (it is the foreground), and on timeout its group is stopped
/// as any other.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn a_plugin_given_a_terminal_of_its_own_leads_its_session_and_is_still_stopped() {
    use std::io::{Read, Write};

    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let terminal = nix::unistd::ttyname(&pty.slave).expect("its name");
    let mut master = std::fs::File::from(pty.master);
    master.write_all(b"typed\n").expect("input waiting");
    let scratch = Scratch::new();
    let mut options = quick();
    options.session_terminal = Some(terminal);
    // Field 6 of /proc/PID/stat is the session: the plugin's own pid.
    let output = run(
        &scratch.sh(
            "printf 'Password: ' > /dev/tty; read -r answer < /dev/tty; \
             set -- $(cat /proc/$$/stat); echo \"$answer sid=$6 pid=$$\"",
        ),
        &State::default(),
        &options,
    )
    .await
    .expect("the plugin reads its terminal");
    let token = String::from_utf8_lossy(output.token.as_bytes()).into_owned();
    let (answer, ids) = token.split_once(' ').expect("answer and ids");
    assert_eq!(answer, "typed");
    let (sid, pid) = ids.split_once(' ').expect("two ids");
    assert_eq!(&sid["sid=".len()..], &pid["pid=".len()..], "{token}");
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("non-blocking");
    let mut written = vec![0; 4096];
    let count = master.read(&mut written).expect("what the plugin wrote");
    assert!(
        String::from_utf8_lossy(&written[..count]).contains("Password: "),
        "{:?}",
        String::from_utf8_lossy(&written[..count])
    );

    options.timeout = Duration::from_secs(2);
    let error = run(&scratch.sh(NEVER_EXITS), &State::default(), &options)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::TimedOut { .. }), "{error:?}");
    for name in ["child", "grandchild"] {
        let pid = scratch.read_pid(name);
        assert!(
            wait_until_gone(pid, Duration::from_secs(5)).await,
            "{name} {pid} survived"
        );
    }
    drop(pty.slave);
}
