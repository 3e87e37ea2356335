//! Shared by the oidc_* tests: the plugin binary, running it through the
//! real protocol host the way a broker does, and what the tests against the
//! dev IdP (scripts/dev-idp, npm oidc-provider) need: its login drivers as
//! browser commands, a browser command that must never run, and JWT checks
//! against its JWKS.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use authplug_protocol::host::{run, PluginCommand, RunError, RunOptions, RunOutput, StderrSink};
use authplug_protocol::{Reason, State};

pub mod stub;
pub mod tls;

#[allow(unused_imports)]
pub use authplug_tests::idp::{
    device_approve_command, login_chromium_command, login_http_command, DevIdp,
};
#[allow(unused_imports)]
pub use authplug_tests::resource_server::verify_jwt;
pub use authplug_tests::workspace_binary;

pub fn plugin_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("authplug-oidc", "authplug-oidc"))
}

/// How to run the plugin once.
pub struct Run {
    pub args: Vec<String>,
    pub state: State,
    pub interactive: bool,
    pub reason: Option<Reason>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub stderr_sink: Option<StderrSink>,
    /// A soft RLIMIT_NOFILE for the plugin.
    pub nofile: Option<u32>,
    /// Without the protocol's variables, as epithet runs it.
    pub epithet: bool,
}

impl Run {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Self {
        Run {
            args: args.iter().map(|s| s.as_ref().to_owned()).collect(),
            state: State::default(),
            interactive: true,
            reason: None,
            env: Vec::new(),
            timeout: Duration::from_secs(60),
            stderr_sink: None,
            nofile: None,
            epithet: false,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|s| s.as_ref().to_owned()));
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

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Sees each stderr line as the plugin writes it.
    pub fn on_stderr(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.stderr_sink = Some(Arc::new(sink));
        self
    }

    fn options(&self) -> RunOptions {
        let mut options = RunOptions::default();
        options.timeout = self.timeout;
        options.kill_grace = Duration::from_millis(500);
        options.drain_window = Duration::from_millis(500);
        options.interactive = self.interactive;
        options.reason = self.reason.clone();
        options.stderr_sink = self.stderr_sink.clone();
        // Nothing from the test's own environment may steer the plugin.
        options.env = vec![
            ("BROWSER".into(), "".into()),
            ("DISPLAY".into(), "".into()),
            ("WAYLAND_DISPLAY".into(), "".into()),
        ];
        for (key, value) in &self.env {
            options.env.push((key.into(), value.into()));
        }
        // epithet opens no fd 4 either (PROTOCOL.md rule 10).
        options.offer_info = !self.epithet;
        options
    }

    pub async fn go(self) -> Result<RunOutput, RunError> {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if self.epithet {
            argv.extend(as_epithet_runs_it());
        }
        if let Some(limit) = self.nofile {
            // The limit is set by a shell that then becomes the plugin.
            argv.extend(["sh".into(), "-c".into()]);
            argv.push(format!(r#"ulimit -Sn {limit} && exec "$0" "$@""#).into());
        }
        argv.push(plugin_binary().into());
        argv.extend(self.args.iter().map(Into::into));
        let command = PluginCommand::from_argv(argv).expect("an argv");
        run(&command, &self.state, &self.options()).await
    }

    /// Runs the plugin as an epithet host does: no `AUTHPLUG_*` variables.
    pub fn epithet_host(mut self) -> Self {
        self.epithet = true;
        self
    }

    /// Runs the plugin with this soft limit on open descriptors.
    pub fn nofile_limit(mut self, limit: u32) -> Self {
        self.nofile = Some(limit);
        self
    }

    /// For a run that must fail: through the host as usual, but with the
    /// plugin's stdout sent to a file and its fd 3 to a pipe that `cat`
    /// copies to a file (by a `bash` wrapper; a pipe, because the SDK writes
    /// state only to a pipe, as a host's fd 3 is), because
    /// the host rightly drops both when the plugin fails, and what the
    /// plugin itself wrote is what must be empty: no token on stdout, no
    /// state on fd 3 (checked here, for every refusal). The state a host
    /// holds is the one it passed in; tests that start from a usable state
    /// also show it still works by running again with it.
    pub async fn go_refused(self) -> Refusal {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stdout = dir.path().join("stdout");
        let fd3 = dir.path().join("fd3");
        let command = PluginCommand::new("bash")
            .args([
                "-c",
                r#"set -o pipefail; "$0" "$@" 3>&1 >"$AUTHPLUG_TEST_STDOUT" | cat >"$AUTHPLUG_TEST_FD3""#,
            ])
            .args([plugin_binary().as_os_str()])
            .args(&self.args);
        let mut options = self.options();
        options.env.push((
            "AUTHPLUG_TEST_STDOUT".into(),
            stdout.clone().into_os_string(),
        ));
        options
            .env
            .push(("AUTHPLUG_TEST_FD3".into(), fd3.clone().into_os_string()));
        let error = match run(&command, &self.state, &options).await {
            Ok(_) => panic!("expected a failure, but the run succeeded"),
            Err(error) => error,
        };
        let refusal = Refusal {
            message: error.to_string(),
            error,
            stdout: std::fs::read(&stdout).unwrap_or_default(),
            fd3: std::fs::read(&fd3).unwrap_or_default(),
        };
        assert!(
            refusal.stdout.is_empty(),
            "the failing plugin printed something on stdout ({} bytes): {}",
            refusal.stdout.len(),
            refusal.message
        );
        assert!(
            refusal.fd3.is_empty(),
            "the failing plugin wrote a state on fd 3 ({} bytes): {}",
            refusal.fd3.len(),
            refusal.message
        );
        refusal
    }

    /// For a run that must fail but hand back a new state (rule 4's
    /// exception: it obtained something it must not lose): the message and
    /// that state, as a host keeps it. Nothing reaches stdout.
    pub async fn go_failed_keeping_state(self) -> (String, State) {
        let mut error = match self.go().await {
            Ok(_) => panic!("expected a failure, but the run succeeded"),
            Err(error) => error,
        };
        let message = error.to_string();
        let state = error
            .take_new_state()
            .unwrap_or_else(|| panic!("the failed run handed back no state: {message}"));
        assert!(!message.contains("eyJ"), "a JWT leaked: {message}");
        (message, state)
    }
}

/// A failed run and what the plugin wrote on stdout and fd 3 meanwhile.
pub struct Refusal {
    pub error: RunError,
    pub message: String,
    pub stdout: Vec<u8>,
    pub fd3: Vec<u8>,
}

impl Refusal {
    /// Exit code 1, `needle` in the message, no JWT in the message (and, as
    /// for every refusal, nothing on stdout or fd 3).
    pub fn assert_clean(&self, needle: &str) -> &str {
        self.assert_exit(1, needle)
    }

    /// The same for a given exit code (2: the flags were refused).
    pub fn assert_exit(&self, expected: i32, needle: &str) -> &str {
        let message = &self.message;
        let as_expected = match &self.error {
            RunError::Exited { code, .. } => *code == expected,
            // A failure that is a login this run may not start, said by the
            // exit code the host offered (PROTOCOL.md rule 6).
            RunError::LoginNeeded { .. } => expected == 1 && message.contains("a login is needed"),
            _ => false,
        };
        assert!(as_expected, "expected exit code {expected}: {message}");
        assert!(
            message.contains(needle),
            "expected {needle:?} in: {message}"
        );
        assert!(!message.contains("eyJ"), "a JWT leaked: {message}");
        message
    }
}

/// Starts `command_line` (shell words) with `url` appended, as a user
/// opening a URL the plugin printed would; stdin and stdout on /dev/null.
pub fn open_printed_url(command_line: &str, url: &str) -> std::process::Child {
    let mut words = shell_words::split(command_line).expect("a command line");
    let program = words.remove(0);
    std::process::Command::new(program)
        .args(words)
        .arg(url.trim())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the URL opener starts")
}

/// The stub provider's only client.
pub const STUB_CLIENT: &str = "stub-client";

/// A "browser" for the stub, whose authorize endpoint redirects straight
/// to the callback.
pub const CURL_BROWSER: &str = "curl -sS -L -o /dev/null";

/// The usual flags against a stub provider at `issuer`.
pub fn stub_args(issuer: &str, flow: &str, browser: &str) -> Vec<String> {
    [
        "--issuer",
        issuer,
        "--client-id",
        STUB_CLIENT,
        "--flow",
        flow,
        "--browser-command",
        browser,
        "--login-timeout",
        "10",
        "--http-timeout",
        "5",
    ]
    .map(String::from)
    .to_vec()
}

/// The start of an argv that runs a program as epithet's broker does:
/// state on stdin and a pipe on fd 3 (the host's), and none of the
/// protocol's variables (`env -u` each).
pub fn as_epithet_runs_it() -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = vec!["env".into()];
    for name in [
        "AUTHPLUG_PROTOCOL",
        "AUTHPLUG_REASON",
        "AUTHPLUG_INTERACTIVE",
        "AUTHPLUG_KEEP_STATE_EXIT",
        "AUTHPLUG_INFO_FD",
        "AUTHPLUG_LOGIN_NEEDED_EXIT",
    ] {
        argv.extend(["-u".into(), name.into()]);
    }
    argv
}

/// The usual flags against the dev IdP's public client `demo`, logging in
/// with `browser` as the browser command.
pub fn dev_args(issuer: &str, browser: &str) -> Vec<String> {
    [
        "--issuer",
        issuer,
        "--client-id",
        "demo",
        // args[5]: the flow.
        "--flow",
        "browser",
        "--browser-command",
        browser,
        "--http-timeout",
        "5",
        "--login-timeout",
        "20",
    ]
    .map(String::from)
    .to_vec()
}

/// A client-credentials run for the dev IdP's client `machine` with this
/// secret (from the environment, as it belongs).
pub fn client_credentials(issuer: &str, secret: &str) -> Run {
    Run::new(&[
        "--issuer",
        issuer,
        "--client-id",
        "machine",
        "--flow",
        "client-credentials",
        "--http-timeout",
        "5",
    ])
    .interactive(false)
    .env("AUTHPLUG_OIDC_CLIENT_SECRET", secret)
}

/// A browser command that must never run: it leaves a mark and fails.
pub struct ForbiddenBrowser {
    pub command: String,
    marker: PathBuf,
    _dir: tempfile::TempDir,
}

impl ForbiddenBrowser {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let marker = dir.path().join("browser-was-called");
        ForbiddenBrowser {
            command: format!("sh -c 'touch {}; exit 1'", marker.display()),
            marker,
            _dir: dir,
        }
    }

    /// Panics if the browser command ran (it starts detached, so give it a
    /// moment).
    pub fn assert_unused(&self) {
        std::thread::sleep(Duration::from_millis(200));
        assert!(!self.marker.exists(), "the browser command ran");
    }
}

/// The HTTP login driver (login-http.mjs) with its step log, to count how
/// often it logged in.
pub struct LoggedDriver {
    pub command: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoggedDriver {
    pub fn http(env: &[(&str, &str)]) -> Self {
        Self::new(env, login_http_command)
    }

    pub fn chromium(env: &[(&str, &str)]) -> Self {
        Self::new(env, login_chromium_command)
    }

    fn new(env: &[(&str, &str)], command: fn(&[(&str, &str)]) -> String) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("driver.log");
        let log_text = log.display().to_string();
        let mut env = env.to_vec();
        env.push(("DEV_IDP_DRIVER_LOG", &log_text));
        LoggedDriver {
            command: command(&env),
            log,
            _dir: dir,
        }
    }

    /// The driver's step log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many logins the driver went through: for the HTTP driver, how
    /// often it requested the loopback callback; for chromium, how often it
    /// opened the login URL. (Both are logged before the request: the
    /// plugin may exit, and the test go on, before the driver logs more.)
    pub fn logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                *l == "login-http: callback" || *l == "login-chromium: open authorization URL"
            })
            .count()
    }
}

/// A run that must refresh (the token was rejected) and may not log in,
/// against the dev IdP at `issuer`, whose refresh is refused: the refusal,
/// after checking that no browser was started.
pub async fn quiet_refused_refresh(issuer: &str, state: &State) -> Refusal {
    let forbidden = ForbiddenBrowser::new();
    let refusal = Run::new(&dev_args(issuer, &forbidden.command))
        .state(state)
        .reason(Reason::Rejected)
        .interactive(false)
        .go_refused()
        .await;
    forbidden.assert_unused();
    assert!(
        matches!(refusal.error, RunError::LoginNeeded { .. }),
        "a login is needed, by the host's exit code: {:?}",
        refusal.error
    );
    refusal
}

/// An interactive run whose refresh token the provider refuses: it says so
/// and logs in again (the driver's second login), as alice.
pub async fn relogin_after_refused_refresh(
    args: &[String],
    state: &State,
    driver: &LoggedDriver,
) -> RunOutput {
    let relogin = Run::new(args)
        .state(state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a new login");
    assert!(
        relogin.stderr_tail.contains("refused the refresh token"),
        "{}",
        relogin.stderr_tail
    );
    assert_eq!(driver.logins(), 2, "{}", driver.log());
    assert_eq!(jwt_claims(&token_text(&relogin))["sub"], "alice");
    relogin
}

/// POSTs a form to one of the dev IdP's `/_admin` endpoints.
pub async fn admin(idp: &DevIdp, endpoint: &str, form: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(idp.admin_url(endpoint))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("the admin endpoint answers");
    assert!(response.status().is_success(), "{endpoint}: {response:?}");
    serde_json::from_str(&response.text().await.expect("a body")).expect("JSON")
}

/// The provider's signing keys, as a resource server fetches them.
pub async fn fetch_jwks(issuer: &str) -> jsonwebtoken::jwk::JwkSet {
    authplug_tests::resource_server::fetch_jwks(issuer)
        .await
        .expect("the provider's JWKS")
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

pub fn token_text(output: &RunOutput) -> String {
    output.token.to_str().expect("a UTF-8 token").to_owned()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// authplug-oidc for the dev IdP's client `demo`: JWT access tokens for
/// `resource` that live as long as the IdP says (no skew), logins through
/// `driver`.
pub fn access_token_argv(idp: &DevIdp, driver: &LoggedDriver, resource: &str) -> Vec<String> {
    let mut argv = opaque_access_token_argv(idp, driver);
    argv.extend(["--resource".to_owned(), resource.to_owned()]);
    argv
}

/// [`access_token_argv`] without a resource: the dev IdP's access tokens
/// are then opaque.
pub fn opaque_access_token_argv(idp: &DevIdp, driver: &LoggedDriver) -> Vec<String> {
    [
        plugin_binary().to_str().expect("a UTF-8 path"),
        "--issuer",
        &idp.issuer,
        "--client-id",
        "demo",
        "--flow",
        "browser",
        "--token",
        "access",
        "--skew",
        "0",
        "--login-timeout",
        "20",
        "--browser-command",
        &driver.command,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `authplug agent` with one profile, `name`, running `argv` (no skew, 30 s
/// runs), on a socket in `dir`, once it listens; killed when dropped.
pub async fn start_agent(
    dir: &Path,
    name: &str,
    argv: &[String],
) -> (tokio::process::Child, PathBuf) {
    // A TOML basic string is a JSON string for our purposes.
    let command = serde_json::to_string(&shell_words::join(argv)).expect("a string");
    let config = format!("[profiles.{name}]\ncommand = {command}\nskew = 0\ntimeout = 30\n");
    start_agent_with_config(dir, &config).await
}

/// `authplug agent` with this config file's text, on a socket in `dir`,
/// once it listens; killed when dropped.
pub async fn start_agent_with_config(dir: &Path, text: &str) -> (tokio::process::Child, PathBuf) {
    let config = dir.join("config.toml");
    std::fs::write(&config, text).expect("write the agent's config");
    let socket = dir.join("run/agent.sock");
    let agent = tokio::process::Command::new(authplug_tests::authplug_binary())
        .args(["agent", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .env_remove("RUST_LOG")
        .env("BROWSER", "")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the agent starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (agent, socket)
}

/// `authplug ARGS --socket SOCKET`, its output.
pub async fn authplug_at(socket: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(authplug_tests::authplug_binary())
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("authplug runs")
}

/// A process's stderr, as text.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The agent's plugin runs so far for its one profile, and the last one's
/// reason.
pub async fn agent_runs(socket: &Path) -> (u64, String) {
    let output = tokio::process::Command::new(authplug_tests::authplug_binary())
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .await
        .expect("authplug status runs");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let profile = &status[0];
    (
        profile["runs"].as_u64().expect("runs"),
        profile["last_run"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

/// The agent's token for its one profile, without a login.
pub async fn agent_token(socket: &Path) -> String {
    let output = tokio::process::Command::new(authplug_tests::authplug_binary())
        .args(["token", "--no-autostart", "--non-interactive", "--socket"])
        .arg(socket)
        .output()
        .await
        .expect("authplug token runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// A device-flow run whose stderr is watched for the
/// verification_uri_complete line; the approver (`None`: nobody) is started
/// on it, as a user on another device would.
pub fn device_run(idp: &DevIdp, browser: &str, approver: Option<String>) -> (Run, Approvers) {
    let approvers: Approvers = Arc::default();
    let started = Arc::clone(&approvers);
    let mut args = dev_args(&idp.issuer, browser);
    args[5] = "device".into();
    let run = Run::new(&args).on_stderr(move |line| {
        let (Some(approver), Some(url)) = (&approver, line.split("or visit ").nth(1)) else {
            return;
        };
        let child = open_printed_url(approver, url);
        started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
    });
    (run, approvers)
}

/// The approvers a [`device_run`] started.
pub type Approvers = Arc<std::sync::Mutex<Vec<std::process::Child>>>;

/// How many of them succeeded, once they have exited.
pub fn approvers_succeeded(approvers: &Approvers) -> usize {
    let mut children = approvers.lock().unwrap_or_else(|e| e.into_inner());
    children
        .iter_mut()
        .map(|c| c.wait().expect("the approver exits"))
        .filter(|status| status.success())
        .count()
}
