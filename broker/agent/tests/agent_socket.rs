//! The agent's socket: malformed and over-long input, clients of other
//! users, half-closed and slow clients, the socket directory's mode.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use authplug_agent::wire::MAX_LINE;

mod support;
use support::*;

#[test]
fn the_agent_survives_garbage_overlong_lines_and_abrupt_disconnects() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let slow = scratch.plugin(
        "slow",
        "echo $$ > \"$DIR/slow.pid\"\nsleep 30\necho tok-slow",
    );
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin), ("slow", &slow)]);

    let mut connection = agent.connect();
    connection.send(b"this is not json\n");
    let answer = connection.answer();
    assert_eq!(answer["ok"], false);
    assert!(answer["error"]
        .as_str()
        .expect("error")
        .contains("malformed request"));
    connection.send(b"{\"v\":99,\"op\":\"token\"}\n");
    assert!(connection.answer()["error"]
        .as_str()
        .expect("error")
        .contains("version 1"));
    // A newer client with an op this agent has never heard of is told
    // about the version, not that its request is malformed.
    connection.send(b"{\"v\":2,\"op\":\"renew\",\"profile\":\"main\",\"scopes\":[\"a\"]}\n");
    let error = connection.answer()["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        error.contains("version 1, not 2") && !error.contains("malformed"),
        "{error}"
    );
    connection.send(b"{\"op\":\"token\"}\n");
    let error = connection.answer()["error"]
        .as_str()
        .expect("error")
        .to_owned();
    assert!(
        error.contains("malformed") && error.contains("`v`"),
        "{error}"
    );
    connection.send(b"{\"v\":1,\"op\":\"launch-missiles\"}\n");
    assert_eq!(connection.answer()["ok"], false);
    connection.send(&[0xff, 0xfe, b'\n']);
    assert_eq!(connection.answer()["ok"], false);
    // Same connection, still served.
    connection.send(b"{\"v\":1,\"op\":\"token\",\"profile\":\"main\"}\n");
    assert_eq!(connection.final_answer()["token"], "tok-1");

    // Over the line limit: an error, then the connection is closed.
    let mut overlong = agent.connect();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent <= MAX_LINE {
        if overlong.writer.write_all(&chunk).is_err() {
            break; // the agent closed already
        }
        sent += chunk.len();
    }
    let answer = overlong.answer();
    assert!(answer["error"]
        .as_str()
        .expect("error")
        .contains("longer than"));

    // Gone mid-line, gone before the answer, gone while a run is under way.
    agent.connect().send(b"{\"v\":1,\"op\":\"tok");
    agent
        .connect()
        .send(b"{\"v\":1,\"op\":\"token\",\"profile\":\"main\"}\n");
    let mut waiting = agent.connect();
    waiting.send(b"{\"v\":1,\"op\":\"token\",\"profile\":\"slow\"}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scratch.path("slow.pid").exists() {
        assert!(Instant::now() < deadline, "slow plugin never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(waiting);
    let pid: i32 = std::fs::read_to_string(scratch.path("slow.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    // Its only waiter left, so the run is cancelled and the plugin killed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(pid) {
        assert!(Instant::now() < deadline, "slow plugin still running");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Still serving, and the cache survived it all.
    let mut fresh = agent.connect();
    fresh.send(b"{\"v\":1,\"op\":\"token\",\"profile\":\"main\"}\n");
    assert_eq!(fresh.final_answer()["token"], "tok-1");
    assert_eq!(scratch.runs("main"), ["initial"]);
}

#[test]
fn the_agent_refuses_a_client_of_another_uid() {
    if !nix::unistd::geteuid().is_root() {
        // Straight to stderr, past the test harness's capture, so the skip
        // shows in a plain `cargo test` run (eprintln! would be swallowed).
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_agent_refuses_a_client_of_another_uid: it needs root to connect as another uid"
        );
        return;
    }
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", "echo tok-secret");
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let dir = scratch.socket().parent().expect("dir").to_owned();
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mode = std::fs::metadata(&agent.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // The checkout may sit in a directory other users cannot enter (a
    // `mktemp -d` clone): nobody runs a copy of the binary from one it can.
    let shared = tempfile::tempdir().expect("temp dir");
    let binary = shared.path().join("authplug");
    std::fs::copy(authplug_binary(), &binary).expect("copy authplug");
    for path in [shared.path(), binary.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    use std::os::unix::process::CommandExt;
    let as_nobody = |socket: &Path| {
        authplug_at(&binary)
            .args(["token", "--no-autostart", "--socket"])
            .arg(socket)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run as nobody")
    };
    // The private directory alone keeps the other user out...
    let output = as_nobody(&agent.socket);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());

    // ...and if someone opens it up, the peer-credential check still does.
    for path in [scratch.dir.path(), dir.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let output = as_nobody(&agent.socket);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no token for another uid");
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("refused") && message.contains("uid 65534"),
        "{message}"
    );
    assert_eq!(
        scratch.runs("main"),
        Vec::<String>::new(),
        "the plugin never ran"
    );

    // Our own uid is still served.
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-secret\n");
}

#[test]
fn an_existing_socket_directory_keeps_its_mode_and_new_ones_are_private() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", "echo tok");
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    // Like `--socket ~/agent.sock`: the user's own, shared directory.
    let open = scratch.path("home");
    std::fs::create_dir(&open).expect("dir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let agent = Agent::start(&open.join("agent.sock"), &[("main", &plugin)]);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok\n");
    assert_eq!(mode(&open), 0o755, "an existing directory was changed");
    assert_eq!(mode(&agent.socket), 0o600);
    drop(agent);

    // Directories the agent creates are its own: 0700.
    let nested = open.join("new/deeper/agent.sock");
    let agent = Agent::start(&nested, &[("main", &plugin)]);
    assert_eq!(mode(&open), 0o755);
    assert_eq!(mode(&open.join("new")), 0o700);
    assert_eq!(mode(&open.join("new/deeper")), 0o700);
    drop(agent);

    // So is authplug's default directory, even if it was opened up.
    let runtime = scratch.path("xdg-runtime");
    std::fs::create_dir_all(runtime.join("authplug")).expect("dir");
    std::fs::set_permissions(
        runtime.join("authplug"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let mut token = authplug();
    token
        .args(["token", "--config", "/dev/null"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("XDG_CONFIG_HOME", scratch.path("no-config"));
    let _stop_at_the_end = StopAgent(runtime.join("authplug/agent.sock"));
    let output = token.output().expect("token");
    // No profiles, so no token; but the agent started and set up its place.
    assert!(String::from_utf8_lossy(&output.stderr).contains("no profiles are configured"));
    assert_eq!(mode(&runtime.join("authplug")), 0o700);
    assert_eq!(mode(&runtime), 0o755);
}

#[test]
fn a_client_that_shuts_down_its_write_side_still_gets_its_answer() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "slow",
        "echo $$ >> \"$DIR/pids\"\nwhile [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\necho tok-slow",
    );
    let agent = Agent::start(&scratch.socket(), &[("slow", &plugin)]);
    let started = |count: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids: Vec<i32> = std::fs::read_to_string(scratch.path("pids"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect();
            if pids.len() == count {
                return pids[count - 1];
            }
            assert!(
                Instant::now() < deadline,
                "plugin run {count} never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Like `printf '{"v":1,"op":"token"}\n' | nc -U agent.sock`.
    let mut half = agent.connect();
    half.send(b"{\"v\":1,\"op\":\"token\"}\n");
    half.writer
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    started(1);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(scratch.path("go"), "").expect("go");
    assert_eq!(half.final_answer()["token"], "tok-slow");

    // Half-closed, then gone altogether: that still cancels the run.
    std::fs::remove_file(scratch.path("go")).expect("reset");
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":\"reject\",\"token\":\"tok-slow\"}\n");
    assert_eq!(connection.final_answer()["cleared"], true);
    connection.send(b"{\"v\":1,\"op\":\"token\"}\n");
    connection
        .writer
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let pid = started(2);
    drop(connection);
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(pid) {
        assert!(
            Instant::now() < deadline,
            "the run outlived its only client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_chatty_plugin_and_a_slow_client_drop_lines_not_memory() {
    let scratch = Scratch::new();
    let lines = 200_000;
    let plugin = scratch.plugin(
        "chatty",
        &format!("seq 1 {lines} >&2\ntouch \"$DIR/printed\"\necho tok-chatty"),
    );
    let agent = Agent::start(&scratch.socket(), &[("chatty", &plugin)]);
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":\"token\"}\n");
    // The client reads nothing until the plugin is done: the run went on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !scratch.path("printed").exists() {
        assert!(Instant::now() < deadline, "the plugin was held up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (mut received, mut dropped) = (0, 0);
    let token = loop {
        let answer = connection.answer();
        if answer.get("ok").is_some() {
            break answer["token"].clone();
        }
        let line = answer["stderr"].as_str().expect("progress line");
        let note = line
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(' '))
            .filter(|(_, rest)| matches!(*rest, "line dropped]" | "lines dropped]"));
        match note {
            Some((count, _)) => dropped += count.parse::<usize>().expect("count"),
            None => received += 1,
        }
    };
    assert_eq!(token, "tok-chatty");
    assert!(
        dropped > 0,
        "nothing was dropped for a client that did not read"
    );
    assert_eq!(
        received + dropped,
        lines,
        "every line arrived or was counted"
    );
}
