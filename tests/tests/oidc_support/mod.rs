//! Shared by the oidc_* tests: the plugin binary, and running it through
//! the real protocol host the way a broker does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use authplug_protocol::host::{run, PluginCommand, RunError, RunOptions, RunOutput};
use authplug_protocol::{Reason, State};

pub mod stub;

pub use authplug_tests::workspace_binary;

pub fn plugin_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("authplug-oidc", "authplug-oidc"))
}

/// How to run the plugin once.
pub struct Run<'a> {
    pub args: Vec<String>,
    pub state: State,
    pub interactive: bool,
    pub reason: Option<Reason>,
    pub env: Vec<(&'a str, String)>,
    pub timeout: Duration,
}

impl<'a> Run<'a> {
    pub fn new(args: &[&str]) -> Self {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            state: State::default(),
            interactive: true,
            reason: None,
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn args_from(mut self, args: Vec<String>) -> Self {
        self.args.extend(args);
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn state(mut self, state: &State) -> Self {
        self.state = state.clone();
        self
    }

    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn env(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    pub async fn go(self) -> Result<RunOutput, RunError> {
        let command = PluginCommand::new(plugin_binary()).args(&self.args);
        let mut options = RunOptions::default();
        options.timeout = self.timeout;
        options.kill_grace = Duration::from_millis(500);
        options.drain_window = Duration::from_millis(500);
        options.interactive = self.interactive;
        options.reason = self.reason;
        // Nothing from the test's own environment may steer the plugin.
        options.env = vec![
            ("BROWSER".into(), "".into()),
            ("DISPLAY".into(), "".into()),
            ("WAYLAND_DISPLAY".into(), "".into()),
        ];
        for (key, value) in self.env {
            options.env.push((key.into(), value.into()));
        }
        run(&command, &self.state, &options).await
    }
}

/// The claims of a JWT, unverified (for assertions only).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

pub fn state_json(state: &State) -> serde_json::Value {
    serde_json::from_slice(state.as_bytes()).expect("the plugin's state is JSON")
}
