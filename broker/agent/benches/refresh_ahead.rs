//! Callers across a token's refresh point: does anyone wait for the plugin?
//! Prints a report; numbers go to BENCHMARKS.md.
//!
//! `cargo bench -p authplug-agent --bench refresh_ahead`, and side by side
//! with another build of `authplug` (the code before refresh ahead, say):
//! `AUTHPLUG_BENCH_BASELINE=/path/to/old/authplug cargo bench -p
//! authplug-agent --bench refresh_ahead`, which alternates the two.
//!
//! The plugin (this executable, run by the agent with a variable set)
//! takes 100 ms, standing in for a provider's round trip, and hands out a
//! JWT that lives 3 s (reported on fd 4 too); the profile's skew is 1 s.
//! Two callers run `authplug token` back to back for 20 s, through several
//! refreshes. For each plugin run after the login, the slowest call that
//! was under way while the plugin ran is compared with a cached call (the
//! median of all calls): the median of those ratios over the runs is the
//! figure (goal ≤ 2; a caller that waits for the plugin makes it about
//! 100 ms ÷ the cached call). As a control, the same for windows as long,
//! halfway between runs, when nothing refreshes.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const AUTHPLUG: &str = env!("CARGO_BIN_EXE_authplug");

/// This bench's own executable is the plugin when the agent runs it with
/// this variable set: one small process, so that the plugin's own start
/// costs the machine little (a shell script's `date`, `base64` and `sleep`
/// would each be a process, and the callers' starts would pay for them).
const PLUGIN_MODE: &str = "AUTHPLUG_REFRESH_AHEAD_BENCH_PLUGIN";

/// The plugin: takes 100 ms, hands out a JWT that expires 3 s from now
/// (said on fd 4 as well, to a host that offers it), and logs the run's
/// start and end (seconds since 1970) to `$RUNS_LOG`.
struct SlowPlugin;

impl authplug_protocol::plugin::Plugin for SlowPlugin {
    fn run(
        &mut self,
        request: authplug_protocol::plugin::Request,
    ) -> Result<authplug_protocol::plugin::Response, authplug_protocol::plugin::Error> {
        use base64::Engine;
        let start = epoch(SystemTime::now());
        std::thread::sleep(Duration::from_millis(100));
        let now = SystemTime::now();
        let exp = now.duration_since(UNIX_EPOCH)?.as_secs() + 3;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"sub":"bench","exp":{exp}}}"#));
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        let log = std::env::var_os("RUNS_LOG").ok_or("RUNS_LOG is not set")?;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)?;
        std::io::Write::write_all(
            &mut log,
            format!("{start} {}\n", epoch(SystemTime::now())).as_bytes(),
        )?;
        Ok(
            authplug_protocol::plugin::Response::new(token, request.state)
                .expires_at(UNIX_EPOCH + Duration::from_secs(exp)),
        )
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(binary: &Path, dir: &Path, runs_log: &Path) -> (Agent, PathBuf) {
    let config = dir.join("config.toml");
    let plugin = std::env::current_exe().expect("the bench's own path");
    std::fs::write(
        &config,
        format!(
            "[profiles.bench]\ncommand = {:?}\nskew = 1\nenv = {{ RUNS_LOG = {:?}, {PLUGIN_MODE} = \"1\" }}\n",
            plugin.display().to_string(),
            runs_log.display().to_string()
        ),
    )
    .expect("the config file");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let socket = dir.join("run/agent.sock");
    let agent = Agent(
        Command::new(binary)
            .args(["agent", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agent"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (agent, socket)
}

fn epoch(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// One `authplug token` call: when it started (seconds since 1970) and
/// how long it took.
struct Call {
    start: f64,
    took: Duration,
}

fn callers(binary: &Path, socket: &Path, how_long: Duration) -> Vec<Call> {
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (binary, socket) = (binary.to_owned(), socket.to_owned());
            std::thread::spawn(move || {
                let mut calls = Vec::new();
                let until = Instant::now() + how_long;
                while Instant::now() < until {
                    let start = SystemTime::now();
                    let started = Instant::now();
                    let status = Command::new(&binary)
                        .args(["token", "--no-autostart", "--non-interactive", "--socket"])
                        .arg(&socket)
                        .stdout(Stdio::null())
                        .status()
                        .expect("authplug token");
                    assert!(status.success());
                    calls.push(Call {
                        start: epoch(start),
                        took: started.elapsed(),
                    });
                }
                calls
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("caller"))
        .collect()
}

struct Report {
    cached_median: Duration,
    /// Per plugin run after the login: the slowest call under way during it.
    slowest_per_run: Vec<Duration>,
    /// The median over the runs of that slowest call ÷ the cached median.
    ratio: f64,
    /// The same for as long a window halfway between two runs, when no
    /// plugin runs: what the slowest of that many calls costs anyway.
    control_ratio: f64,
}

/// The slowest call under way between `start` and `end`.
fn slowest(calls: &[Call], start: f64, end: f64) -> Option<Duration> {
    calls
        .iter()
        .filter(|c| c.start < end && c.start + c.took.as_secs_f64() > start)
        .map(|c| c.took)
        .max()
}

fn median_ratio(slowest: &[Duration], cached: Duration) -> f64 {
    let mut ratios: Vec<f64> = slowest
        .iter()
        .map(|d| d.as_secs_f64() / cached.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure(binary: &Path, how_long: Duration) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    let runs_log = dir.path().join("runs.log");
    let (_agent, socket) = start_agent(binary, dir.path(), &runs_log);
    // The login: not a refresh, not measured.
    let status = Command::new(binary)
        .args(["token", "--no-autostart", "--socket"])
        .arg(&socket)
        .stdout(Stdio::null())
        .status()
        .expect("the login");
    assert!(status.success());
    let calls = callers(binary, &socket, how_long);
    let runs: Vec<(f64, f64)> = std::fs::read_to_string(&runs_log)
        .expect("the runs")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut times = line.split(' ').map(|t| t.parse::<f64>().ok());
            Some((times.next()??, times.next()??))
        })
        .collect();
    let mut all: Vec<Duration> = calls.iter().map(|c| c.took).collect();
    all.sort();
    let cached_median = all[all.len() / 2];
    let slowest_per_run: Vec<Duration> = runs
        .iter()
        .filter_map(|(start, end)| slowest(&calls, *start, *end))
        .collect();
    let quiet: Vec<Duration> = runs
        .windows(2)
        .filter_map(|pair| {
            let ((_, end), (next, _)) = (pair[0], pair[1]);
            let (length, middle) = (pair[0].1 - pair[0].0, (end + next) / 2.0);
            slowest(&calls, middle - length / 2.0, middle + length / 2.0)
        })
        .collect();
    Report {
        cached_median,
        ratio: median_ratio(&slowest_per_run, cached_median),
        control_ratio: median_ratio(&quiet, cached_median),
        slowest_per_run,
    }
}

fn print(name: &str, report: &Report) {
    let slowest: Vec<String> = report
        .slowest_per_run
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect();
    println!(
        "  {name:<10} cached call median {:6.2} ms; slowest call during each refresh (ms): [{}]",
        report.cached_median.as_secs_f64() * 1e3,
        slowest.join(", "),
    );
    println!(
        "  {name:<10} slowest during a refresh / cached: median {:.2}x (goal <= 2x); control, as long a window with no refresh: {:.2}x",
        report.ratio, report.control_ratio
    );
}

fn main() {
    if std::env::var_os(PLUGIN_MODE).is_some() {
        authplug_protocol::plugin::main(SlowPlugin)
    }
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // and should only check that this runs.
    let quick = !std::env::args().any(|a| a == "--bench");
    let how_long = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(20)
    };
    let this = PathBuf::from(AUTHPLUG);
    let baseline = std::env::var_os("AUTHPLUG_BENCH_BASELINE").map(PathBuf::from);
    let rounds = if quick || baseline.is_none() { 1 } else { 2 };
    println!(
        "callers across refresh points, a 100 ms plugin, {}s per round:",
        how_long.as_secs()
    );
    for _ in 0..rounds {
        print("this", &measure(&this, how_long));
        if let Some(baseline) = &baseline {
            print("baseline", &measure(baseline, how_long));
        }
    }
}
