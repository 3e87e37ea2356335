//! Paste-back login, for a session over SSH with a provider that has no
//! device flow: the plugin prints the login address; the user opens it in
//! a browser on another machine, which is sent at the end to the plugin's
//! loopback redirect and cannot load it there; the user pastes that
//! address into the terminal. Driven through a real pty (util-linux
//! `script`), against the dev IdP, with its login driver as the browser on
//! the other machine (it writes the address instead of requesting it).
//!
//! Two ways the pasted address reaches the plugin: read by the plugin on
//! `/dev/tty` when its host lends it the terminal (`authplug run`, rule 7),
//! or, under the agent (whose plugins have no terminal), requested by the
//! command that asked for the token, as the browser would have.

mod oidc_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authplug_tests::idp::login_http_command;
use authplug_tests::terminal::OnTerminal;
use oidc_support::{jwt_claims, plugin_binary, DevIdp};

const SHOWS_WITHIN: Duration = Duration::from_secs(30);

/// authplug-oidc against the dev IdP's public client, logging in by
/// `flow`.
fn paste_args(issuer: &str, flow: &str) -> Vec<String> {
    [
        "--issuer",
        issuer,
        "--client-id",
        "demo",
        "--flow",
        flow,
        "--http-timeout",
        "5",
        "--login-timeout",
        "60",
    ]
    .map(String::from)
    .to_vec()
}

/// The login address the plugin printed.
fn printed_login_address(terminal: &OnTerminal, issuer: &str) -> String {
    let prefix = format!("{issuer}/auth?");
    let screen = terminal.wait_for(&prefix, SHOWS_WITHIN);
    let found = screen
        .split_whitespace()
        .find(|word| word.starts_with(&prefix))
        .map(str::to_owned);
    found.expect("the login address is on the screen")
}

/// A browser on another machine: logs in at `address` and returns the
/// loopback address it was sent to, unrequested.
fn log_in_elsewhere(address: &str, dir: &Path) -> String {
    let file = dir.join("callback.txt");
    let file_text = file.display().to_string();
    let command = login_http_command(&[("DEV_IDP_CALLBACK_FILE", &file_text)]);
    let mut words = shell_words::split(&command).expect("the driver's command line");
    let program = words.remove(0);
    let status = std::process::Command::new(program)
        .args(words)
        .arg(address)
        .status()
        .expect("the login driver runs");
    assert!(status.success(), "the login driver failed");
    let deadline = Instant::now() + SHOWS_WITHIN;
    loop {
        if let Ok(callback) = std::fs::read_to_string(&file) {
            return callback;
        }
        assert!(Instant::now() < deadline, "the driver wrote no callback");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_token(path: &Path) -> String {
    let token = std::fs::read_to_string(path).expect("the token file");
    token.trim().to_owned()
}

fn quoted(path: &Path) -> String {
    shell_words::quote(&path.display().to_string()).into_owned()
}

/// `--flow auto` over SSH (no browser here) with a provider that lists no
/// device endpoint picks the paste-back login.
#[test]
fn the_plugin_takes_the_address_pasted_on_its_terminal_and_checks_it_as_the_listener_would() {
    let idp = DevIdp::start(r#"{"bend":{"unlisted":["device_authorization_endpoint"]}}"#)
        .expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let state_file = dir.path().join("state");
    let mut argv = vec![
        "env".into(),
        "-u".into(),
        "DISPLAY".into(),
        "-u".into(),
        "WAYLAND_DISPLAY".into(),
        "-u".into(),
        "BROWSER".into(),
        "SSH_CONNECTION=192.0.2.1 50000 192.0.2.2 22".into(),
        authplug_tests::authplug_binary().display().to_string(),
        "run".into(),
        "--state-out".into(),
        state_file.display().to_string(),
        "--".into(),
        plugin_binary().display().to_string(),
    ];
    argv.extend(paste_args(&idp.issuer, "auto"));
    let command = format!("{} > {}", shell_words::join(&argv), quoted(&token_file));
    let mut terminal = OnTerminal::start(&command, &[]);

    let address = printed_login_address(&terminal, &idp.issuer);
    let callback = log_in_elsewhere(&address, dir.path());
    let redirect = callback.split('?').next().unwrap();
    assert!(
        redirect.starts_with("http://127.0.0.1:"),
        "a loopback redirect: {callback}"
    );

    // Not this login's: its state is wrong; asked again, nothing ends.
    let url = url::Url::parse(&callback).unwrap();
    let forged: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { "forged".into() } else { v };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    let mut forged_url = url.clone();
    forged_url.query_pairs_mut().clear().extend_pairs(&forged);
    terminal.type_line(forged_url.as_str());
    terminal.wait_for("that address is not from this login", SHOWS_WITHIN);
    // The login's address itself carries the right state but no code.
    terminal.type_line(&address);
    terminal.wait_for("that address has no code", SHOWS_WITHIN);
    // A bare code has no `iss`, which this provider promises (RFC 9207
    // §3): refused, asked again.
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    terminal.type_line(&code);
    terminal.wait_for("paste the whole address", SHOWS_WITHIN);
    // Without its scheme, as some browsers show it.
    terminal.type_line(callback.trim_start_matches("http://"));

    let status = terminal.wait(SHOWS_WITHIN);
    let screen = terminal.screen();
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("device"), "{screen}");
    let token = read_token(&token_file);
    assert_eq!(jwt_claims(&token)["sub"], "alice", "{screen}");
    assert!(!screen.contains(&token), "the token stays off the terminal");
    let state = std::fs::read_to_string(&state_file).expect("the state");
    assert!(state.contains("refresh_token"), "a refresh token is kept");
}

/// The dev IdP's discovery promises `iss` in login responses; this test
/// relies on it (a bare code is refused above).
#[tokio::test]
async fn the_dev_idp_promises_iss_in_login_responses() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let discovery: serde_json::Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", idp.issuer))
            .await
            .unwrap()
            .text()
            .await
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap();
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
}

/// A profile's plugin under the agent has no terminal: the address pasted
/// where the user asked for the token (`authplug token`, started with no
/// agent running, on a fresh HOME) is requested by `authplug token` on
/// this machine, and the plugin's listener takes it.
#[test]
fn a_plugin_under_the_agent_gets_the_address_pasted_where_the_token_was_asked_for() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    let config_dir = home.join(".config/authplug");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut plugin = vec![plugin_binary().display().to_string()];
    plugin.extend(paste_args(&idp.issuer, "paste"));
    let command_toml = serde_json::to_string(&shell_words::join(&plugin)).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        format!("default_profile = \"work\"\n\n[profiles.work]\ncommand = {command_toml}\n"),
    )
    .unwrap();
    let socket: PathBuf = runtime.join("authplug/agent.sock");
    let _stop = authplug_tests::StopAgent(socket.clone());
    let token_file = dir.path().join("token");
    let home_text = home.display().to_string();
    let runtime_text = runtime.display().to_string();
    let command = format!(
        "env -u AUTHPLUG_CONFIG -u AUTHPLUG_SOCKET -u XDG_CONFIG_HOME {} token > {}",
        quoted(&authplug_tests::authplug_binary()),
        quoted(&token_file)
    );
    let mut terminal = OnTerminal::start(
        &command,
        &[("HOME", &home_text), ("XDG_RUNTIME_DIR", &runtime_text)],
    );

    let address = printed_login_address(&terminal, &idp.issuer);
    let callback = log_in_elsewhere(&address, dir.path());
    terminal.type_line("the code is 1234");
    terminal.wait_for("only the address the browser was sent to", SHOWS_WITHIN);
    terminal.type_line(&callback);

    let status = terminal.wait(SHOWS_WITHIN);
    let screen = terminal.screen();
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains("the pasted address reached the login"),
        "{screen}"
    );
    let token = read_token(&token_file);
    assert_eq!(jwt_claims(&token)["sub"], "alice", "{screen}");
    assert!(socket.exists(), "`authplug token` started the agent");
}
