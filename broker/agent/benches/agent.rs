//! The agent as a whole process, side by side with baselines. Prints a
//! report; numbers go to BENCHMARKS.md.
//!
//! `cargo bench -p authplug-agent --bench agent`
//!
//! 1. `authplug token` (cached, through the agent) against spawning
//!    `/bin/true`, alternating, 300 rounds each: medians and their ratio.
//! 2. 64 concurrent socket clients, one persistent connection each, for
//!    5 s: tokens per second and latency percentiles.
//! 3. The agent's resident memory with 10 idle profiles (before any has
//!    run its plugin), then with each of the 10 holding a token.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AUTHPLUG: &str = env!("CARGO_BIN_EXE_authplug");

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(socket: &Path, profiles: &[String]) -> Agent {
    // A real (empty) config file, as a user has: the agent looks at it
    // before each request (reload.rs), which is part of what is measured.
    let config = socket
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("config.toml");
    std::fs::write(&config, "").expect("the config file");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the config file");
    let mut command = Command::new(AUTHPLUG);
    command
        .args(["agent", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for profile in profiles {
        command.arg("--profile").arg(profile);
    }
    let agent = Agent(command.spawn().expect("start agent"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    agent
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn time_process(command: &mut Command) -> Duration {
    let started = Instant::now();
    let status = command.status().expect("spawn");
    let elapsed = started.elapsed();
    assert!(status.success());
    elapsed
}

fn whole_process(socket: &Path) {
    let rounds = 300;
    let (mut true_times, mut token_times) = (Vec::new(), Vec::new());
    let mut bin_true = Command::new("/bin/true");
    let mut token = Command::new(AUTHPLUG);
    token
        .args(["token", "--no-autostart", "--socket"])
        .arg(socket)
        .stdout(Stdio::null());
    for _ in 0..20 {
        time_process(&mut bin_true);
        time_process(&mut token);
    }
    for _ in 0..rounds {
        true_times.push(time_process(&mut bin_true));
        token_times.push(time_process(&mut token));
    }
    true_times.sort();
    token_times.sort();
    let (t, a) = (percentile(&true_times, 0.5), percentile(&token_times, 0.5));
    println!("whole process, {rounds} rounds alternating:");
    println!(
        "  /bin/true            median {:8.1} us  p90 {:8.1} us",
        micros(t),
        micros(percentile(&true_times, 0.9))
    );
    println!(
        "  authplug token       median {:8.1} us  p90 {:8.1} us",
        micros(a),
        micros(percentile(&token_times, 0.9))
    );
    println!(
        "  ratio (medians)      {:.2}x  (goal <= 3x)",
        micros(a) / micros(t)
    );
}

fn throughput(socket: &Path) {
    let clients = 64;
    let duration = Duration::from_secs(5);
    let stop = Arc::new(AtomicBool::new(false));
    let request = b"{\"v\":1,\"op\":\"token\"}\n";
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, stop) = (socket.to_owned(), stop.clone());
            std::thread::spawn(move || {
                let stream = UnixStream::connect(&socket).expect("connect");
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let mut latencies = Vec::with_capacity(100_000);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    writer.write_all(request).expect("send");
                    line.clear();
                    reader.read_line(&mut line).expect("answer");
                    latencies.push(started.elapsed());
                    assert!(line.contains("\"token\""), "{line}");
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let per_client: Vec<Vec<Duration>> = threads
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    let slow: Vec<(usize, usize)> = per_client
        .iter()
        .enumerate()
        .flat_map(|(client, lat)| {
            lat.iter()
                .enumerate()
                .filter(|(_, d)| **d > Duration::from_millis(20))
                .map(move |(i, _)| (client, i))
        })
        .collect();
    println!("  requests over 20 ms (client, index on its connection): {slow:?}");
    let mut all: Vec<Duration> = per_client.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{clients} concurrent socket clients, {:.1} s:",
        elapsed.as_secs_f64()
    );
    println!(
        "  {} tokens, {:.0} tokens/s (goal >= 20000)",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {:.0} us  p99 {:.0} us  max {:.0} us",
        micros(percentile(&all, 0.5)),
        micros(percentile(&all, 0.99)),
        micros(percentile(&all, 1.0))
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // and should only check that this runs.
    let quick = !std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = dir.path().join("plugin.sh");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln\n",
    )
    .expect("plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let socket: PathBuf = dir.path().join("run/agent.sock");
    let profiles: Vec<String> = (0..10)
        .map(|i| {
            let name = if i == 0 {
                "default".to_owned()
            } else {
                format!("p{i}")
            };
            format!("{name}={}", plugin.display())
        })
        .collect();
    let agent = start_agent(&socket, &profiles);
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss = rss_kib(agent.0.id());
    // Fill every profile's cache (the default one is used below).
    for profile in &profiles {
        let name = profile.split('=').next().expect("name");
        let status = Command::new(AUTHPLUG)
            .args(["token", "--no-autostart", "--profile", name, "--socket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .status()
            .expect("token");
        assert!(status.success());
    }
    std::thread::sleep(Duration::from_millis(300));
    let holding_rss = rss_kib(agent.0.id());
    if quick {
        println!("agent bench: smoke run only (use `cargo bench` for figures)");
        return;
    }
    println!("agent with 10 idle profiles, none holding a token yet: RSS {idle_rss} KiB");
    println!("agent with 10 profiles each holding a token: RSS {holding_rss} KiB");
    whole_process(&socket);
    throughput(&socket);
    println!(
        "agent RSS after the throughput run: {} KiB",
        rss_kib(agent.0.id())
    );
}
