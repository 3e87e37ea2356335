//! One local process must not make the agent unavailable: thousands of idle
//! connections, hundreds of unfinished 2 MiB lines, a client that pipelines
//! a request and hangs up; and a crash must not put its tokens in a core
//! file. Real agent processes, real sockets, bounded in count and time.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::*;

/// An agent started with a soft descriptor limit of 1024, the usual
/// default, as the report's was.
fn agent_with_default_limit(scratch: &Scratch, plugin: &Path) -> Agent {
    let socket = scratch.socket();
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 1024 && exec "$0" "$@""#)
        .arg(authplug_binary())
        .arg("agent")
        .arg("--socket")
        .arg(&socket)
        .arg("--config")
        .arg("/dev/null")
        .arg("--profile")
        .arg(format!("main={}", plugin.display()))
        .env_remove("AUTHPLUG_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start agent");
    wait_for_socket(&socket);
    Agent { child, socket }
}

/// Lets this test process open a few thousand sockets itself.
fn raise_own_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let wanted = hard.min(16384);
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).expect("setrlimit");
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `authplug token` while the flood holds its connections: answered, and
/// how long it took (reported, not asserted beyond a generous bound).
fn token_while_flooded(agent: &Agent) -> Duration {
    let started = Instant::now();
    let output = token_cli(&agent.socket, &["--no-autostart"]);
    let took = started.elapsed();
    assert_eq!(stdout(&output), "tok-1\n");
    eprintln!("authplug token answered in {took:?} during the flood");
    assert!(took < Duration::from_secs(5), "{took:?}");
    took
}

#[test]
fn two_thousand_idle_connections_leave_room_for_a_real_client() {
    raise_own_descriptor_limit();
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = agent_with_default_limit(&scratch, &plugin);
    let idle: Vec<UnixStream> = (0..2000)
        .map(|_| UnixStream::connect(&agent.socket).expect("connect"))
        .collect();
    token_while_flooded(&agent);
    // The agent dropped the oldest idle ones to make room: most of the
    // flood reads end of file (or the idle-timeout message) at once.
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut buffer = Vec::new();
    first
        .read_to_end(&mut buffer)
        .expect("the oldest idle connection was closed, not left hanging");
    drop(idle);
    // Still serving, and the run happened once.
    assert_eq!(
        stdout(&token_cli(&agent.socket, &["--no-autostart"])),
        "tok-1\n"
    );
    assert_eq!(scratch.runs("main").len(), 1);
}

#[test]
fn a_connection_that_sends_no_whole_request_is_dropped_after_the_idle_timeout() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":");
    connection
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let answer = connection.answer();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("no whole request line within 10 seconds")),
        "{answer}"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(9), "{waited:?}");
    let mut rest = String::new();
    assert_eq!(connection.reader.read_line(&mut rest).expect("eof"), 0);
}

#[test]
fn five_hundred_unfinished_2_mib_lines_do_not_take_the_agent_to_a_gigabyte() {
    raise_own_descriptor_limit();
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = agent_with_default_limit(&scratch, &plugin);
    let before = rss_kib(agent.child.id());
    // Just under the line limit each, and no newline: all of it would be
    // held until the line ends.
    let chunk = vec![b'x'; authplug_agent::wire::MAX_LINE - 1024];
    let flood: Vec<UnixStream> = (0..500)
        .map(|_| {
            let mut stream = UnixStream::connect(&agent.socket).expect("connect");
            stream
                .set_write_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            // The agent may refuse (and close) before it is all sent.
            let _ = stream.write_all(&chunk);
            stream
        })
        .collect();
    let peak = rss_kib(agent.child.id());
    eprintln!("agent RSS: {before} KiB before, {peak} KiB with 500 unfinished 2 MiB lines");
    assert!(
        peak < before + 200 * 1024,
        "the agent grew from {before} KiB to {peak} KiB"
    );
    token_while_flooded(&agent);
    drop(flood);
}

#[test]
fn a_client_that_pipelines_a_request_and_hangs_up_cancels_its_run() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "main",
        r#"trap 'echo terminated > "$DIR/term"; exit 1' TERM
echo $$ > "$DIR/pid"
sleep 30 & wait"#,
    );
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":\"token\"}\n{\"v\":1,\"op\":\"status\"}\n");
    let started = Instant::now();
    while !scratch.path("pid").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the plugin never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(connection);
    while !scratch.path("term").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the run was not cancelled when its client hung up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_agent_keeps_out_of_core_dumps_and_debuggers() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the agent as another user");
        return;
    }
    // Run as nobody, so that its /proc entries would be nobody's if it
    // were dumpable: a non-dumpable process's are root's.
    let shared = tempfile::tempdir().expect("temp dir");
    let binary = shared.path().join("authplug");
    std::fs::copy(authplug_binary(), &binary).expect("copy authplug");
    let run_dir = shared.path().join("run");
    std::fs::create_dir(&run_dir).expect("run dir");
    for path in [shared.path(), binary.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    nix::unistd::chown(
        &run_dir,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .expect("chown");
    let socket = run_dir.join("agent.sock");
    use std::os::unix::process::CommandExt;
    let child = authplug_at(&binary)
        .args(["agent", "--config", "/dev/null", "--socket"])
        .arg(&socket)
        .env("HOME", &run_dir)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agent as nobody");
    let agent = Agent { child, socket };
    wait_for_socket(&agent.socket);
    let pid = agent.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core limit");
    assert!(
        core.split_whitespace().skip(4).take(2).all(|v| v == "0"),
        "{core}"
    );
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(format!("/proc/{pid}/status"))
        .expect("status")
        .uid();
    assert_eq!(
        owner, 0,
        "a dumpable process's /proc entries are its own user's"
    );
    // A process that does not protect itself, as the control.
    let control = Command::new("sleep")
        .arg("30")
        .uid(65534)
        .gid(65534)
        .spawn()
        .expect("sleep as nobody");
    let owner = std::fs::metadata(format!("/proc/{}/status", control.id()))
        .expect("status")
        .uid();
    let mut control = control;
    let _ = control.kill();
    let _ = control.wait();
    assert_eq!(owner, 65534);
}
