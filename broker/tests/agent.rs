//! The `authplug` agent and CLI as real processes on real unix sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authplug_broker::agent::wire::MAX_LINE;

mod support;
use support::*;

#[test]
fn token_and_reject_through_the_cli_with_one_run_for_many_callers() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", &format!("sleep 0.5\n{COUNTING}"));
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);

    // Twenty processes at once on an empty cache: one plugin run.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let socket = agent.socket.clone();
            std::thread::spawn(move || token_cli(&socket, &["--no-autostart"]))
        })
        .collect();
    for caller in callers {
        assert_eq!(stdout(&caller.join().expect("thread")), "tok-1\n");
    }
    assert_eq!(scratch.runs("main"), ["initial"]);

    // A storm of rejects of the same token: one re-run.
    reject_from_threads(&agent.socket, "tok-1\n", 10);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(scratch.runs("main"), ["initial", "rejected"]);

    // Late rejecters of the stale tok-1, after the re-run ended: the agent
    // compares before clearing, so tok-2 stays cached and nothing runs.
    reject_from_threads(&agent.socket, "tok-1\n", 10);
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":\"reject\",\"token\":\"tok-1\"}\n");
    assert_eq!(connection.final_answer()["cleared"], false);
    let status = authplug()
        .args(["status", "--json", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("status");
    let profiles: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(profiles[0]["has_token"], true);
    assert_eq!(profiles[0]["rejected"], false);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(scratch.runs("main"), ["initial", "rejected"]);

    let empty = reject_cli(&agent.socket, "");
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no token on stdin"));
}

#[test]
fn the_waiting_cli_shows_the_plugins_stderr_live() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "login",
        "echo 'To log in, visit https://login.example/device?code=WXYZ' >&2\nwhile [ ! -e \"$DIR/approved\" ]; do sleep 0.05; done\necho tok-login",
    );
    let agent = Agent::start(&scratch.socket(), &[("login", &plugin)]);
    let mut child = authplug()
        .args(["token", "--no-autostart", "--profile", "login", "--socket"])
        .arg(&agent.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("authplug token");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("stderr line");
    assert_eq!(
        line,
        "To log in, visit https://login.example/device?code=WXYZ\n"
    );
    // Shown while the login is still pending.
    assert!(child.try_wait().expect("try_wait").is_none());
    std::fs::write(scratch.path("approved"), "").expect("approve");
    let mut token = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut token)
        .expect("token");
    assert!(child.wait().expect("wait").success());
    assert_eq!(token, "tok-login\n");
}

/// `command` with its stdout or stderr a pipe nobody reads any more, as in
/// `authplug status | head -1` once `head` has exited.
fn with_closed(stream: &str, command: &mut Command) -> Output {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    command.stdin(Stdio::null());
    if stream == "stdout" {
        command.stdout(writer).stderr(Stdio::piped());
    } else {
        command.stderr(writer).stdout(Stdio::piped());
    }
    command.output().expect("run authplug")
}

#[test]
fn a_closed_stdout_or_stderr_is_no_reason_for_the_agent_commands_to_panic() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "main",
        "echo 'To log in, visit https://login.example/device' >&2\necho 'waiting...' >&2\necho tok-1",
    );
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let cli = |args: &[&str]| {
        let mut command = authplug();
        command.args(args).arg("--socket").arg(&agent.socket);
        command
    };
    let panicked = |output: &Output| String::from_utf8_lossy(&output.stderr).contains("panicked");

    // The plugin's stderr lines go nowhere; the token still reaches stdout.
    let token = with_closed("stderr", &mut cli(&["token", "--no-autostart"]));
    assert_eq!(token.status.code(), Some(0), "{token:?}");
    assert_eq!(token.stdout, b"tok-1\n");
    // The token cannot be written: a failure, said on stderr.
    let token = with_closed("stdout", &mut cli(&["token", "--no-autostart"]));
    assert!(!panicked(&token), "{token:?}");
    assert_eq!(token.status.code(), Some(1), "{token:?}");
    assert!(String::from_utf8_lossy(&token.stderr).contains("cannot write the token"));

    for json in [false, true] {
        let mut status = cli(&["status"]);
        if json {
            status.arg("--json");
        }
        let status = with_closed("stdout", &mut status);
        assert!(!panicked(&status), "{status:?}");
        assert_eq!(status.status.code(), Some(0), "{status:?}");
    }

    // `stop` with no agent there says so on stderr.
    let nowhere = scratch.path("none/agent.sock");
    let mut stop = authplug();
    stop.arg("stop").arg("--socket").arg(&nowhere);
    let stop = with_closed("stderr", &mut stop);
    assert_eq!(stop.status.code(), Some(0), "{stop:?}");
}

#[test]
fn errors_reach_the_cli_with_the_plugins_message_and_profiles_are_named() {
    let scratch = Scratch::new();
    let failing = scratch.plugin("failing", "echo 'the IdP said: invalid_client' >&2\nexit 4");
    let good = scratch.plugin("good", "echo tok-good");
    let agent = Agent::start(&scratch.socket(), &[("failing", &failing), ("good", &good)]);

    let output = token_cli(
        &agent.socket,
        &["--profile", "failing", "--non-interactive"],
    );
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("exit code 4") && message.contains("invalid_client"),
        "{message}"
    );
    assert!(output.stdout.is_empty());

    let output = token_cli(&agent.socket, &[]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("no default profile") && message.contains("failing, good"),
        "{message}"
    );

    let output = token_cli(&agent.socket, &["--profile", "nope"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no profile named `nope`"));
    assert_eq!(
        stdout(&token_cli(&agent.socket, &["-p", "good"])),
        "tok-good\n"
    );

    let status = authplug()
        .args(["status", "--json", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("status");
    let profiles: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(profiles[0]["name"], "failing");
    assert_eq!(profiles[0]["has_token"], false);
    assert!(profiles[0]["last_error"]
        .as_str()
        .expect("error")
        .contains("invalid_client"));
    assert_eq!(profiles[1]["has_token"], true);
    let text = String::from_utf8(status.stdout).expect("utf-8");
    assert!(!text.contains("tok-good"), "status shows no token");
}

#[test]
fn after_a_failed_login_token_runs_the_plugin_quietly_and_says_how_to_force() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "login",
        r#"echo "$AUTHPLUG_INTERACTIVE" >> "$DIR/interactive"
if [ "$AUTHPLUG_INTERACTIVE" = 1 ]; then echo "login timed out" >&2; exit 1; fi
echo "a login is needed" >&2
exit 2"#,
    );
    let agent = Agent::start(&scratch.socket(), &[("login", &plugin)]);
    let interactive = || std::fs::read_to_string(scratch.path("interactive")).expect("log");

    let first = token_cli(&agent.socket, &[]);
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("login timed out"));

    let second = token_cli(&agent.socket, &[]);
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("a login is needed")
            && message.contains("cool-down")
            && message.contains("--force"),
        "{message}"
    );
    assert_eq!(
        interactive(),
        "1\n0\n",
        "the second run was not interactive"
    );

    let forced = token_cli(&agent.socket, &["--force"]);
    assert!(String::from_utf8_lossy(&forced.stderr).contains("login timed out"));
    assert_eq!(interactive(), "1\n0\n1\n");
}

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

/// `authplug reject` of `token` from `count` threads at once; each must
/// succeed.
fn reject_from_threads(socket: &Path, token: &'static str, count: usize) {
    let rejecters: Vec<_> = (0..count)
        .map(|_| {
            let socket = socket.to_owned();
            std::thread::spawn(move || reject_cli(&socket, token))
        })
        .collect();
    for rejecter in rejecters {
        let output = rejecter.join().expect("thread");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
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
fn a_config_file_is_read_whole_from_a_pipe_and_refused_over_its_limit() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", "echo tok-piped");
    let config_text = format!("[profiles.main]\ncommand = \"'{}'\"\n", plugin.display());
    // Like `authplug agent --config <(decrypt config.toml.gpg)`.
    let fifo = scratch.path("config.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let writer = std::thread::spawn({
        let (fifo, text) = (fifo.clone(), config_text.clone());
        move || std::fs::write(fifo, text).expect("write the fifo")
    });
    let socket = scratch.socket();
    let mut agent = authplug()
        .args(["agent", "--config"])
        .arg(&fifo)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agent");
    writer.join().expect("writer");
    wait_for_socket(&socket);
    assert_eq!(stdout(&token_cli(&socket, &[])), "tok-piped\n");
    let _ = agent.kill();
    let _ = agent.wait();

    // Comments alone make it valid TOML, but no config needs a MiB.
    let config = scratch.path("config.toml");
    let padding = "# padding\n".repeat(authplug_broker::agent::config::CONFIG_LIMIT / 10 + 1);
    std::fs::write(&config, format!("{config_text}{padding}")).expect("config");
    let message = agent_refusal(
        &config,
        &scratch.path("other.sock"),
        "a config over the limit",
    );
    assert!(
        message.contains("cannot read config file")
            && message.contains("config.toml")
            && message.contains("larger than the limit"),
        "{message}"
    );
}

/// Starts `authplug agent --config CONFIG` and expects it to refuse the
/// file: it must exit with an error (an agent that took the file would
/// serve on, so it is stopped and the test fails). Returns its stderr.
fn agent_refusal(config: &Path, socket: &Path, what: &str) -> String {
    let mut agent = authplug()
        .args(["agent", "--config"])
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = agent.kill();
            let _ = agent.wait();
            panic!("{what} was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = agent.wait_with_output().expect("agent");
    assert!(!output.status.success(), "{what} was accepted");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn out_of_range_durations_in_the_config_file_are_refused_by_name() {
    let scratch = Scratch::new();
    let config = scratch.path("config.toml");
    for (field, value) in [("cooldown", "1e19"), ("timeout", "0"), ("skew", "1e12")] {
        std::fs::write(
            &config,
            format!("[profiles.ok]\ncommand = \"x\"\n[profiles.big]\ncommand = \"x\"\n{field} = {value}\n"),
        )
        .expect("config");
        let message = agent_refusal(&config, &scratch.socket(), &format!("{field} = {value}"));
        assert!(
            message.contains("profile `big`")
                && message.contains(&format!("{field} must be a number of seconds")),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
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
fn a_config_file_others_can_read_is_warned_about_in_the_log() {
    let scratch = Scratch::new();
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        "[profiles.main]\ncommand = \"true\"\nenv = { CLIENT_SECRET = \"s3cr3t\" }\n",
    )
    .expect("config");
    let agent_log = |mode: u32| -> String {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let log = scratch.path("agent.stderr");
        let mut child = authplug()
            .args(["agent", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(scratch.socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("agent");
        wait_for_socket(&scratch.socket());
        let _ = child.kill();
        let _ = child.wait();
        std::fs::read_to_string(&log).expect("log")
    };
    let shared = agent_log(0o644);
    assert!(
        shared.contains("WARN")
            && shared.contains("readable by other users (mode 644)")
            && shared.contains("chmod 600"),
        "{shared}"
    );
    assert!(!shared.contains("s3cr3t"), "{shared}");
    let private = agent_log(0o600);
    assert!(!private.contains("other users"), "{private}");
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

/// Stops a background agent even when the test fails half-way.
struct StopAgent(PathBuf);

impl Drop for StopAgent {
    fn drop(&mut self) {
        let _ = authplug()
            .args(["stop", "--socket"])
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// The end-to-end case: a resource server that accepts only the newest
/// token, a client that uses `authplug token` and reports 401s with
/// `authplug reject`.
#[test]
fn a_resource_server_401_is_healed_through_token_and_reject() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("api", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("api", &plugin)]);
    let newest = Arc::new(Mutex::new(String::from("tok-1")));
    let server = ResourceServer::start(newest.clone());

    let call = |socket: &Path| -> (u16, String) {
        let token = stdout(&token_cli(socket, &[]));
        let token = token.trim_end().to_owned();
        (server.get(&token), token)
    };
    let (status, token) = call(&agent.socket);
    assert_eq!((status, token.as_str()), (200, "tok-1"));

    // The server revokes tok-1.
    *newest.lock().expect("newest") = "tok-2".into();
    let (status, stale) = call(&agent.socket);
    assert_eq!(status, 401);
    assert!(reject_cli(&agent.socket, &format!("{stale}\n"))
        .status
        .success());
    let (status, token) = call(&agent.socket);
    assert_eq!((status, token.as_str()), (200, "tok-2"));
    assert_eq!(scratch.runs("api"), ["initial", "rejected"]);
}

/// A small HTTP server on its own thread and runtime (these tests are
/// blocking, like the CLI).
struct ResourceServer {
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl ResourceServer {
    fn start(newest: Arc<Mutex<String>>) -> ResourceServer {
        use axum::http::{HeaderMap, StatusCode};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/me",
            axum::routing::get(move |headers: HeaderMap| {
                let newest = newest.clone();
                async move {
                    let expected = format!("Bearer {}", newest.lock().expect("newest").as_str());
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some(given) if given == expected => StatusCode::OK,
                        _ => StatusCode::UNAUTHORIZED,
                    }
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        ResourceServer { url, runtime }
    }

    fn get(&self, token: &str) -> u16 {
        let url = format!("{}/me", self.url);
        self.runtime.block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    }
}

/// A failed run through the agent: `authplug token` shows the plugin's
/// stderr as it comes, and the error once, without repeating those lines;
/// a run that asked for its new state to be kept hands it on to the next.
#[test]
fn a_failed_run_is_told_once_and_its_kept_state_reaches_the_next_run() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "p",
        &format!(
            r#"if [ ! -e "$DIR/failed" ]; then
  touch "$DIR/failed"
  cat >/dev/null
  printf 41 >&3
  echo "rotated the refresh token, but no token this time" >&2
  exit "$AUTHPLUG_KEEP_STATE_EXIT"
fi
{COUNTING}"#
        ),
    );
    let agent = Agent::start(&scratch.socket(), &[("p", &plugin)]);
    let failed = token_cli(&agent.socket, &["--profile", "p"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        stderr.matches("rotated the refresh token").count(),
        1,
        "the plugin's line once: {stderr}"
    );
    assert!(stderr.contains("updated state"), "{stderr}");
    assert!(!stderr.contains("last words"), "{stderr}");
    // The state it handed back, 41, is what the next run starts from.
    let next = token_cli(&agent.socket, &["--profile", "p"]);
    assert_eq!(stdout(&next).trim(), "tok-42");
}
