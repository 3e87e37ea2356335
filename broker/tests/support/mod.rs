//! What the broker's tests share: sh plugins that count their runs.

#![allow(dead_code)] // each test binary uses its own share

use std::path::{Path, PathBuf};
use std::time::Duration;

use authplug_broker::{Broker, BrokerOptions, PluginCommand, Token};

pub struct Plugin {
    dir: tempfile::TempDir,
}

impl Plugin {
    /// Writes `body` as an executable sh script; `$DIR` in it is a scratch
    /// directory, and each run appends `$AUTHPLUG_REASON $AUTHPLUG_INTERACTIVE`
    /// to `$DIR/runs` before the body.
    pub fn new(body: &str) -> Plugin {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = format!(
            "#!/bin/sh\nDIR='{}'\necho \"$AUTHPLUG_REASON $AUTHPLUG_INTERACTIVE\" >> \"$DIR/runs\"\n{body}\n",
            dir.path().display()
        );
        let path = dir.path().join("plugin.sh");
        std::fs::write(&path, script).expect("write plugin");
        make_executable(&path);
        Plugin { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self) -> PluginCommand {
        PluginCommand::new(self.path("plugin.sh"))
    }

    pub fn broker(&self, options: BrokerOptions) -> Broker {
        Broker::new(self.command(), options)
    }

    /// One line per run: `reason interactive`.
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("runs"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

pub fn options() -> BrokerOptions {
    let mut options = BrokerOptions::default();
    options.run.timeout = Duration::from_secs(20);
    options.run.kill_grace = Duration::from_millis(200);
    options.run.drain_window = Duration::from_millis(200);
    options
}

pub fn text(token: &Token) -> String {
    token.to_str().expect("utf-8 token").to_owned()
}

/// Polls `condition` every few milliseconds, up to 10 s.
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
