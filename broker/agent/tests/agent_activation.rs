//! The agent under a supervisor: socket activation with the real
//! `systemd-socket-activate` (the first `authplug token` starts it; its
//! plugins see neither the socket nor the `LISTEN_*` variables), a clean
//! exit on SIGTERM that leaves the supervisor's socket in place, and what
//! it says when handed something it cannot serve on.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::*;

/// Records what a plugin run sees of the activation, then prints a token.
const SNOOPING: &str = r#"echo "fds=${LISTEN_FDS:-none} pid=${LISTEN_PID:-none}" > "$DIR/seen"
for fd in /proc/$$/fd/*; do readlink "$fd"; done >> "$DIR/seen"
echo tok"#;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn command_line(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ")
}

#[test]
fn systemd_socket_activation_starts_the_agent_on_the_first_client() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", SNOOPING);
    let socket = scratch.path("agent.sock");
    let mut launcher = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(authplug_binary())
        .args(["agent", "--config", "/dev/null", "--profile"])
        .arg(format!("main={}", plugin.display()))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate runs (scripts/setup installs it)");
    let pid = launcher.id();
    let _stop = StopAgent(socket.clone());
    wait_until("the launcher listens", || socket.exists());
    // Nobody asked yet: no agent.
    assert!(command_line(pid).starts_with("systemd-socket-activate"));

    let output = token_cli(&socket, &["--no-autostart"]);
    assert_eq!(stdout(&output), "tok\n");
    assert!(
        command_line(pid).contains("authplug agent"),
        "the launcher became the agent: {}",
        command_line(pid)
    );
    let seen = std::fs::read_to_string(scratch.path("seen")).unwrap();
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some("fds=none pid=none"), "{seen}");
    // Pipes from the host, the script itself: no socket.
    assert!(
        !seen.contains("socket:"),
        "the plugin holds a socket: {seen}"
    );
    assert!(lines.any(|l| l.starts_with("pipe:")), "{seen}");

    // SIGTERM: a clean exit, the supervisor's socket left for the next start.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = launcher.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(socket.exists(), "the supervisor's socket was removed");
}

/// Makes `fd` the started program's fd 3, open across exec.
fn as_fd3(command: &mut Command, fd: std::os::fd::RawFd) {
    // SAFETY: only dup2 and fcntl, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would leave close-on-exec set.
            let done = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if done == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `authplug agent` with `fd` as its fd 3 and `LISTEN_FDS=fds`,
/// `LISTEN_PID` its own pid, as a supervisor starts it.
fn activated(fd: std::os::fd::RawFd, fds: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", r#"LISTEN_PID=$$ exec "$@""#, "sh"])
        .arg(authplug_binary())
        .args(["agent", "--config", "/dev/null", "--profile", "main=true"])
        .env("LISTEN_FDS", fds)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_fd3(&mut command, fd);
    command
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_passed_socket_is_served_and_a_wrong_one_refused_in_words() {
    let scratch = Scratch::new();
    let socket = scratch.path("passed.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Killed if the test fails half-way (a `stop` could wait on the
    // listener this test still holds).
    let mut agent = KillOnDrop(activated(listener.as_raw_fd(), "1").spawn().unwrap());
    // The agent answers on the socket it was passed (no --socket given).
    let status = authplug()
        .args(["status", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(stdout(&status).contains("main"));
    let stop = authplug()
        .args(["stop", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(stop.status.success());
    assert!(agent.0.wait().unwrap().success());
    assert!(socket.exists(), "left for the supervisor");

    let two = activated(listener.as_raw_fd(), "2").output().unwrap();
    assert!(!two.status.success());
    let said = String::from_utf8_lossy(&two.stderr);
    assert!(said.contains("passed 2 sockets (LISTEN_FDS)"), "{said}");

    let file = std::fs::File::create(scratch.path("not-a-socket")).unwrap();
    let plain = activated(file.as_raw_fd(), "1").output().unwrap();
    assert!(!plain.status.success());
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(
        said.contains("fd 3 is not a listening unix socket"),
        "{said}"
    );
}

#[test]
fn another_process_s_activation_is_ignored() {
    // LISTEN_PID names another process (inherited from a parent): the
    // agent binds its own socket, as without a supervisor.
    let scratch = Scratch::new();
    let socket = scratch.socket();
    let mut agent = authplug()
        .args([
            "agent",
            "--config",
            "/dev/null",
            "--profile",
            "main=true",
            "--socket",
        ])
        .arg(&socket)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _stop = StopAgent(socket.clone());
    wait_for_socket(&socket);
    assert!(authplug()
        .args(["stop", "--socket"])
        .arg(&socket)
        .status()
        .unwrap()
        .success());
    assert!(agent.wait().unwrap().success());
    assert!(
        !Path::new(&socket).exists(),
        "its own socket, removed on exit"
    );
}
