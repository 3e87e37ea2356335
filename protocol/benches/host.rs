//! Host overhead, side by side with a baseline in the same run:
//!
//! 1. `spawn`: `host::run` of a trivial compiled plugin versus a bare
//!    `std::process::Command` spawn + wait of the same binary (goal ≤ 1.10×).
//! 2. `state_10mib`: a 10 MiB state round trip (the plugin copies stdin to
//!    fd 3) versus `cat` through the same kind of pipes (goal ≤ 1.5×).
//! 3. Peak memory of a 10 MiB round trip, measured in a fresh process from
//!    /proc/self/status (goal: at most 3× the state size); printed at the end.
//! 4. The `spawn` pair again, interleaved run by run (bare, host, host,
//!    bare, ...), printed at the end: on a shared machine whose speed drifts
//!    over seconds, criterion's groups, measured one after the other, can
//!    each catch a different phase; interleaving gives both the same one.
//!
//! Run with `cargo bench -p authplug-protocol --bench host`. The plugin is
//! `examples/bench_plugin.rs`, built here in release mode (cargo does
//! nothing if it is up to date; a stale one would measure old code).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use authplug_protocol::host::{run, PluginCommand, RunOptions};
use authplug_protocol::{State, STATE_LIMIT};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MEASURE_MEMORY: &str = "AUTHPLUG_BENCH_MEASURE_MEMORY";

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_owned()
}

/// Where the plugin is, without building it (for the memory measurement,
/// which must not count a cargo run).
fn built_bench_plugin() -> PathBuf {
    profile_dir().join("examples").join("bench_plugin")
}

fn bench_plugin() -> PathBuf {
    let profile_dir = profile_dir();
    let plugin = built_bench_plugin();
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "-p", "authplug-protocol"])
            .args(["--example", "bench_plugin", "--target-dir"])
            .arg(profile_dir.parent().expect("target/"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building examples/bench_plugin failed");
    });
    plugin
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The baseline: the same plugin, spawned and waited for by the standard
/// library with null stdio.
fn bare_spawn(plugin: &Path) {
    let status = Command::new(plugin)
        .arg("token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the plugin runs");
    assert!(status.success());
}

fn spawn(c: &mut Criterion) {
    let plugin = bench_plugin();
    let command = PluginCommand::new(&plugin).arg("token");
    let options = RunOptions::default();
    let runtime = runtime();
    let empty = State::default();
    let mut group = c.benchmark_group("spawn");
    group.bench_function("bare Command spawn+wait", |b| {
        b.iter(|| bare_spawn(&plugin))
    });
    // Diagnostic, not a goal: the same spawn forced onto the fork() path,
    // which any `pre_exec` hook (the host's fd 3 mapping and close_range)
    // forces instead of posix_spawn.
    group.bench_function("bare Command spawn+wait, fork path", |b| {
        b.iter(|| {
            let mut command = Command::new(&plugin);
            command
                .arg("token")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: the hook does nothing.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, || Ok(()));
            }
            assert!(command.status().expect("the plugin runs").success());
        })
    });
    group.bench_function("host::run", |b| {
        b.to_async(&runtime).iter(|| async {
            let output = run(&command, &empty, &options).await.expect("a token");
            assert_eq!(output.token.len(), 11);
        })
    });
    group.finish();
}

/// `cat` fed and drained concurrently through tokio pipes, as the host
/// feeds and drains a plugin; with `large_pipes`, both pipes get the 1 MiB
/// buffers the host asks for when it sends a large state.
async fn cat_round_trip(input: &[u8], large_pipes: bool) -> usize {
    let mut child = tokio::process::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cat runs");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    if large_pipes {
        let size = || nix::fcntl::FcntlArg::F_SETPIPE_SZ(1024 * 1024);
        nix::fcntl::fcntl(&stdin, size()).expect("F_SETPIPE_SZ");
        nix::fcntl::fcntl(&stdout, size()).expect("F_SETPIPE_SZ");
    }
    let feed = async {
        stdin.write_all(input).await.expect("cat reads");
        drop(stdin);
    };
    let mut output = Vec::new();
    let drain = stdout.read_to_end(&mut output);
    let ((), read) = tokio::join!(feed, drain);
    read.expect("cat writes");
    assert!(child.wait().await.expect("cat exits").success());
    output.len()
}

fn state_10mib(c: &mut Criterion) {
    let plugin = bench_plugin();
    let command = PluginCommand::new(&plugin).arg("copy");
    let options = RunOptions::default();
    let runtime = runtime();
    let state = State::new(vec![b's'; STATE_LIMIT]);
    let mut group = c.benchmark_group("state_10mib");
    group.throughput(Throughput::Bytes(STATE_LIMIT as u64));
    group.bench_function(BenchmarkId::new("cat through pipes", "10MiB"), |b| {
        b.to_async(&runtime).iter(|| async {
            assert_eq!(cat_round_trip(state.as_bytes(), false).await, STATE_LIMIT);
        })
    });
    group.bench_function(BenchmarkId::new("cat through 1 MiB pipes", "10MiB"), |b| {
        b.to_async(&runtime).iter(|| async {
            assert_eq!(cat_round_trip(state.as_bytes(), true).await, STATE_LIMIT);
        })
    });
    group.bench_function(BenchmarkId::new("host::run copy plugin", "10MiB"), |b| {
        b.to_async(&runtime).iter(|| async {
            let output = run(&command, &state, &options).await.expect("a token");
            assert_eq!(output.state.len(), STATE_LIMIT);
        })
    });
    group.finish();
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// In a fresh process: RSS before, then the high-water mark after one
/// 10 MiB round trip. Prints one line the parent reads.
fn measure_memory_here() {
    let runtime = runtime();
    let command = PluginCommand::new(built_bench_plugin()).arg("copy");
    let before_state = status_kib("VmRSS:");
    let state = State::new(vec![b's'; STATE_LIMIT]);
    let before_run = status_kib("VmRSS:");
    let output = runtime
        .block_on(run(&command, &state, &RunOptions::default()))
        .expect("a token");
    assert_eq!(output.state.len(), STATE_LIMIT);
    let peak = status_kib("VmHWM:");
    println!("{before_state} {before_run} {peak}");
}

/// Section 4: the spawn pair, interleaved (the order flips every round so
/// neither always goes first), and the ratio of the medians. Each host run
/// enters the runtime on its own (`block_on`), a little more than
/// criterion's batches pay: if anything, against the host.
fn report_interleaved_spawn() {
    const ROUNDS: usize = 2000;
    let plugin = bench_plugin();
    let command = PluginCommand::new(&plugin).arg("token");
    let options = RunOptions::default();
    let runtime = runtime();
    let empty = State::default();
    let bare_run = || bare_spawn(&plugin);
    let host_run = || {
        let output = runtime
            .block_on(run(&command, &empty, &options))
            .expect("a token");
        assert_eq!(output.token.len(), 11);
    };
    let timed = |f: &dyn Fn()| {
        let started = std::time::Instant::now();
        f();
        started.elapsed()
    };
    for _ in 0..100 {
        bare_run();
        host_run();
    }
    let mut bare = Vec::with_capacity(ROUNDS);
    let mut host = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            bare.push(timed(&bare_run));
            host.push(timed(&host_run));
        } else {
            host.push(timed(&host_run));
            bare.push(timed(&bare_run));
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (bare_median, host_median) = (median(&mut bare), median(&mut host));
    println!();
    println!("spawn, interleaved ({ROUNDS} rounds of each):");
    println!("  bare Command spawn+wait median: {bare_median:?}");
    println!("  host::run median: {host_median:?}");
    println!(
        "  host::run / bare: {:.3}x",
        host_median.as_secs_f64() / bare_median.as_secs_f64()
    );
}

fn report_memory() {
    bench_plugin();
    let output = Command::new(std::env::current_exe().expect("own path"))
        .env(MEASURE_MEMORY, "1")
        .output()
        .expect("the measuring process runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [before_state, before_run, peak] = numbers[..] else {
        panic!("unexpected measurement: {text}");
    };
    let state_kib = (STATE_LIMIT / 1024) as u64;
    let by_host = peak - before_run;
    let with_input = peak - before_state;
    println!();
    println!("state_10mib peak memory (fresh process, /proc/self/status):");
    println!("  RSS before the caller's state: {before_state} KiB");
    println!("  RSS with the 10 MiB state, before the run: {before_run} KiB");
    println!("  VmHWM after the run: {peak} KiB");
    println!(
        "  host's peak over the caller's state: {by_host} KiB = {:.2}x the state",
        by_host as f64 / state_kib as f64
    );
    println!(
        "  including the caller's own copy of the state: {with_input} KiB = {:.2}x the state",
        with_input as f64 / state_kib as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));
    targets = spawn, state_10mib
}

fn main() {
    if std::env::var_os(MEASURE_MEMORY).is_some() {
        measure_memory_here();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    report_memory();
    report_interleaved_spawn();
}
