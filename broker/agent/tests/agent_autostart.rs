//! An agent started on demand by `authplug token`, and stopped: a clean
//! runtime directory, a stop followed at once by a token, an agent that dies
//! at once, concurrent autostarts, a stop probe holding the lock.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::*;

#[test]
fn token_starts_an_agent_from_a_clean_runtime_dir() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let runtime = scratch.path("xdg-runtime");
    std::fs::create_dir(&runtime).expect("runtime dir");
    let config_home = scratch.path("xdg-config");
    std::fs::create_dir_all(config_home.join("authplug")).expect("config dir");
    std::fs::write(
        config_home.join("authplug/config.toml"),
        format!(
            "default_profile = \"main\"\n[profiles.main]\ncommand = \"'{}'\"\ntimeout = 30\n",
            plugin.display()
        ),
    )
    .expect("config");
    let with_env = |command: &mut Command| {
        // Debug logging everywhere: the agent's log must still hold no token.
        command
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", &config_home)
            .env("RUST_LOG", "debug");
    };

    let mut no_autostart = authplug();
    with_env(no_autostart.args(["token", "--no-autostart"]));
    let output = no_autostart.output().expect("token");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no agent is running"));

    // Nothing is cached without an agent, so a reject has nothing to do.
    let mut reject = authplug();
    with_env(reject.arg("reject").stdin(Stdio::piped()));
    let mut child = reject.spawn().expect("reject");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"tok-0\n")
        .expect("write");
    assert!(child.wait().expect("reject").success());
    assert!(!runtime.join("authplug").exists(), "reject starts no agent");

    let mut token = authplug();
    with_env(token.arg("token"));
    let output = token.output().expect("token");
    let socket = runtime.join("authplug/agent.sock");
    let _stop_at_the_end = StopAgent(socket.clone());
    assert_eq!(stdout(&output), "tok-1\n");
    let mode = std::fs::metadata(runtime.join("authplug"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(runtime.join("authplug/agent.log").exists());

    // The detached agent keeps the token for the next process.
    let mut again = authplug();
    with_env(again.arg("token"));
    assert_eq!(stdout(&again.output().expect("token")), "tok-1\n");
    assert_eq!(scratch.runs("main"), ["initial"]);

    // Two agents on one socket: the second refuses.
    let second = authplug()
        .args(["agent", "--config", "/dev/null", "--socket"])
        .arg(&socket)
        .output()
        .expect("second agent");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    let mut reject = authplug();
    with_env(reject.arg("reject").stdin(Stdio::piped()));
    let mut child = reject.spawn().expect("reject");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"tok-1\n")
        .expect("write");
    assert!(child.wait().expect("reject").success());
    let mut after_reject = authplug();
    with_env(after_reject.arg("token"));
    assert_eq!(stdout(&after_reject.output().expect("token")), "tok-2\n");

    let mut stop = authplug();
    with_env(stop.arg("stop"));
    assert!(stop.status().expect("stop").success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "agent did not remove its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(runtime.join("authplug/agent.log")).expect("log");
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    assert!(
        !log.contains("tok-1") && !log.contains("tok-2"),
        "the log holds no token: {log}"
    );
}

#[test]
fn stop_then_token_at_once_meets_a_new_agent() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let socket = scratch.socket();
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.main]\ncommand = \"'{}'\"\n", plugin.display()),
    )
    .expect("config");
    let _stop_at_the_end = StopAgent(socket.clone());
    // `authplug stop && authplug token`, again and again: each token comes
    // from a new agent (the old one's token went with it), never from one
    // on its way out, nor from an autostarted one that lost the lock race.
    for round in 0..15 {
        let output = authplug()
            .args(["token", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .output()
            .expect("token");
        assert_eq!(stdout(&output), "tok-1\n", "round {round}");
        let stop = authplug()
            .args(["stop", "--socket"])
            .arg(&socket)
            .output()
            .expect("stop");
        assert!(
            stop.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&stop.stderr)
        );
        assert!(!socket.exists(), "round {round}: socket still there");
    }
    assert_eq!(scratch.runs("main").len(), 15);
}

#[test]
fn an_autostarted_agent_that_dies_at_once_is_reported_with_its_log() {
    let scratch = Scratch::new();
    let config = scratch.path("config.toml");
    std::fs::write(&config, "[profiles.main]\ncommand = \"x\"\ntimout = 3\n").expect("config");
    let output = authplug()
        .args(["token", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(scratch.socket())
        .output()
        .expect("token");
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("could not start the agent: it exited at once")
            && message.contains("is not valid")
            && message.contains("timout")
            && message.contains("agent.log"),
        "{message}"
    );
    assert!(!message.contains("within 10 s"), "{message}");
}

#[test]
fn concurrent_autostarts_end_with_one_agent_serving_everyone() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", &format!("sleep 0.3\n{COUNTING}"));
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.main]\ncommand = \"'{}'\"\n", plugin.display()),
    )
    .expect("config");
    let socket = scratch.socket();
    let _stop_at_the_end = StopAgent(socket.clone());
    // Each finds no agent and starts one; all but one of those lose the
    // race for the lock and exit, and their clients use the winner.
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (config, socket) = (config.clone(), socket.clone());
            std::thread::spawn(move || {
                authplug()
                    .args(["token", "--config"])
                    .arg(&config)
                    .arg("--socket")
                    .arg(&socket)
                    .output()
                    .expect("token")
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(stdout(&caller.join().expect("thread")), "tok-1\n");
    }
    assert_eq!(scratch.runs("main"), ["initial"]);
}

#[test]
fn an_autostart_that_meets_a_stop_probe_on_the_lock_starts_again() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.main]\ncommand = \"'{}'\"\n", plugin.display()),
    )
    .expect("config");
    let socket = scratch.socket();
    let _stop_at_the_end = StopAgent(socket.clone());
    std::fs::create_dir(scratch.path("run")).expect("socket dir");
    std::fs::set_permissions(scratch.path("run"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    // As `authplug stop` does to see whether the old agent is gone, but
    // held until the autostarted agent has met it and exited.
    let lock = std::fs::File::create(socket.with_extension("lock")).expect("lock file");
    let probe = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .expect("take the lock");
    let token = authplug()
        .args(["token", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("token");
    let log = socket.with_extension("log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("already running")
    {
        assert!(
            Instant::now() < deadline,
            "the autostarted agent never met the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(probe);
    // No agent listens and the lock is free: the client starts another.
    let output = token.wait_with_output().expect("token");
    assert_eq!(stdout(&output), "tok-1\n");
}
