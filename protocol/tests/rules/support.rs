//! What the rule tests share: sh plugins, short limits, process checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authplug_protocol::host::{run, PluginCommand, RunError, RunOptions, RunOutput};
use authplug_protocol::State;

/// A plugin written as an `sh -c` script, run directly (no shell between the
/// host and `sh`).
pub fn sh(script: &str) -> PluginCommand {
    PluginCommand::new("sh").arg("-c").arg(script)
}

/// Options with limits short enough for tests.
pub fn quick() -> RunOptions {
    let mut options = RunOptions::default();
    options.timeout = Duration::from_secs(20);
    options.kill_grace = Duration::from_millis(300);
    options.drain_window = Duration::from_millis(300);
    options
}

pub async fn run_sh(script: &str, state: &State) -> Result<RunOutput, RunError> {
    run(&sh(script), state, &quick()).await
}

/// A scratch directory for marker and pid files; the path is passed to the
/// script as `$D`.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `script` with `D` set to this directory.
    pub fn sh(&self, script: &str) -> PluginCommand {
        sh(&format!("D='{}'; {script}", self.dir.path().display()))
    }

    /// The pid in the file `name`, waiting up to 5 s for a script to have
    /// written it whole (`echo $! > file` creates the file first).
    pub fn read_pid(&self, name: &str) -> i32 {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(self.path(name));
            if let Some(pid) = text.as_ref().ok().and_then(|t| t.trim().parse().ok()) {
                return pid;
            }
            if start.elapsed() > Duration::from_secs(5) {
                panic!("pid file {name}: {text:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits up to `limit` for `path` to exist.
pub async fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    path.exists()
}

pub use authplug_testkit::{is_reaped, is_running, process_state};

/// Polls until `pid` has left the process table, up to `limit`: for the
/// plugin itself, whose parent is the host, that means the host reaped it.
pub async fn wait_until_reaped(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if is_reaped(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    is_reaped(pid)
}

/// Sends SIGKILL to `pid`: cleanup after a test whose plugin might be left
/// running when the test fails.
pub fn kill_leftover(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Polls until `pid` stops running, up to `limit`.
pub async fn wait_until_gone(pid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    !is_running(pid)
}

/// The SDK probe plugin built from `examples/sdk_probe.rs`. A plain
/// `cargo test` builds examples first; a filtered one (`--test rules`) does
/// not, so it is built (or found up to date) here, once per test process.
pub fn sdk_probe() -> PluginCommand {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let probe = profile_dir.join("examples").join("sdk_probe");
    BUILT.call_once(|| {
        let target_dir = profile_dir.parent().expect("target/");
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "authplug-protocol",
                "--example",
                "sdk_probe",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building examples/sdk_probe failed");
    });
    assert!(probe.exists(), "{} is missing", probe.display());
    PluginCommand::new(probe)
}
