//! Shared helpers for the end-to-end tests: where the workspace is, its
//! binaries (built on demand), and the dev IdP ([`idp`]).
//!
//! Not a library for users: nothing here is published.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub mod cert_authority;
pub mod forward_proxy;
pub mod git_client;
pub mod git_server;
pub mod host_options;
pub mod idp;
pub mod mcp;
pub mod openssh;
pub mod resource_server;
pub mod standins;
pub mod terminal;

/// The repository root (the parent of this crate's directory).
pub fn workspace() -> PathBuf {
    let tests_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_crate.parent().unwrap_or(tests_crate).to_path_buf()
}

/// A binary of another workspace package, built (or found up to date) once
/// per test process in this test's own target directory and profile:
/// `cargo test -p authplug-tests` alone would otherwise run a stale or
/// missing one.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    build_once(package, "--bin", name, profile_dir().join(name))
}

/// An example program of a workspace package (`cargo build --example`),
/// built as [`workspace_binary`] builds a binary.
pub fn workspace_example(package: &str, name: &str) -> PathBuf {
    build_once(
        package,
        "--example",
        name,
        profile_dir().join("examples").join(name),
    )
}

fn build_once(package: &str, kind: &str, name: &str, output: PathBuf) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let profile_dir = profile_dir();
    let key = format!("{package} {kind} {name}");
    // One build at a time: concurrent cargo runs would only wait on its lock.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&key) {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        without_package_env(&mut cargo);
        cargo
            .args(["build", "--quiet", "--locked", "-p", package, kind, name])
            .arg("--target-dir")
            .arg(target_dir());
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building {name} failed");
        built.push(key);
    }
    output
}

/// The `authplug` binary, built as [`workspace_binary`] builds any.
pub fn authplug_binary() -> PathBuf {
    workspace_binary("authplug-agent", "authplug")
}

/// target/<profile>, where this test binary's build put everything.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The target directory of this test's build, for a cargo the test runs.
pub fn target_dir() -> PathBuf {
    let profile_dir = profile_dir();
    profile_dir
        .parent()
        .expect("target/<profile> has a parent")
        .to_path_buf()
}

/// `cargo test` gives the test its package's CARGO_PKG_* and
/// CARGO_MANIFEST_* variables; ring's build script tracks them, so passing
/// them on to a cargo the test runs would rebuild ring, rustls, reqwest...
/// there and again in the next plain `cargo build` or `cargo test`.
pub fn without_package_env(command: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|prefix| key_text.starts_with(prefix))
        {
            command.env_remove(&key);
        }
    }
}

/// Waits until stdin closes, SIGTERM or SIGINT: how the demo's servers
/// (`authplug-demo-api`, `authplug-demo-ca`) know their starter is gone.
pub async fn until_stdin_closes_or_signalled() -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    use tokio::signal::unix::{signal, SignalKind};
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 256];
    let stdin_closed = async { while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {} };
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
    tokio::select! {
        () = stdin_closed => {}
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// Stops the agent a test's first command started (autostart), however
/// the test ends.
pub struct StopAgent(pub PathBuf);

impl Drop for StopAgent {
    fn drop(&mut self) {
        let _ = std::process::Command::new(authplug_binary())
            .args(["stop", "--socket"])
            .arg(&self.0)
            .output();
    }
}
