//! The SSH certificate path, for real: the reference certificate agent
//! (`broker/examples/ssh_cert_agent.rs`, which embeds the broker) with
//! `authplug-oidc` against the dev IdP, the reference CA
//! (`authplug_tests::cert_authority`), a real `ssh-agent`, and real `ssh`
//! into a real `sshd` on 127.0.0.1 that trusts only that CA. ssh asks the
//! certificate agent for a certificate through `Match exec`, as a user's
//! ~/.ssh/config would.
//!
//! And an epithet-style host (no `AUTHPLUG_*` variables) driving the plugin
//! itself, healing a token the CA refused.

mod oidc_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authplug_protocol::State;
use authplug_tests::cert_authority::CertAuthority;
use authplug_tests::openssh::{SshAgent, Sshd};
use authplug_tests::workspace_example;
use oidc_support::{
    as_epithet_runs_it, dev_args, plugin_binary, token_text, DevIdp, LoggedDriver, Run,
};

/// The audience of the CA's tokens: JWT access tokens for this resource.
const CA_RESOURCE: &str = "https://ca.example";

/// The whole setup of one test: every server, and the certificate agent.
struct World {
    _idp: DevIdp,
    ca: Arc<CertAuthority>,
    sshd: Sshd,
    ssh_agent: SshAgent,
    driver: LoggedDriver,
    cert_agent: Child,
    cert_agent_log: PathBuf,
    control: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// Knobs for [`World::start`].
struct Setup {
    /// How long the CA's certificates live.
    validity: Duration,
    /// The principals sshd lets the account in with.
    principals: &'static [&'static str],
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            validity: Duration::from_secs(300),
            principals: &["alice"],
        }
    }
}

impl World {
    fn start(setup: Setup) -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let idp = DevIdp::start("{}").expect("the dev IdP starts");
        let ca = runtime
            .block_on(CertAuthority::new(
                &idp.issuer,
                CA_RESOURCE,
                "sub",
                setup.validity,
            ))
            .expect("the CA gets the IdP's keys");
        let ca_url = runtime.block_on(ca.serve()).expect("the CA listens");
        let sshd = Sshd::start(&ca.public_key_line(), setup.principals).expect("sshd starts");
        let ssh_agent = SshAgent::start().expect("ssh-agent starts");
        let driver = LoggedDriver::http(&[]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let control = dir.path().join("cert-agent.sock");
        let cert_agent_log = dir.path().join("cert-agent.log");
        let plugin = shell_words::join(plugin_argv(&idp.issuer, &driver));
        let cert_agent = Command::new(cert_agent_binary())
            .args(["serve", "--plugin", &plugin, "--ca", &ca_url])
            .arg("--control")
            .arg(&control)
            // Renew only once a certificate has expired: the tests below
            // watch expiries happen.
            .args(["--renew-before", "0"])
            .env("SSH_AUTH_SOCK", &ssh_agent.socket)
            .env("BROWSER", "")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&cert_agent_log).expect("a log file"))
            .spawn()
            .expect("the certificate agent starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&control).is_err() {
            assert!(
                Instant::now() < deadline,
                "the certificate agent did not listen: {}",
                std::fs::read_to_string(&cert_agent_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        World {
            _idp: idp,
            ca,
            sshd,
            ssh_agent,
            driver,
            cert_agent,
            cert_agent_log,
            control,
            _dir: dir,
            _runtime: runtime,
        }
    }

    /// A user's ~/.ssh/config for this host: ask the certificate agent for
    /// a certificate, then use the ssh-agent it loads.
    fn ssh_config(&self) -> String {
        format!(
            "Match host 127.0.0.1 exec \"{} ensure --control {}\"\n  IdentityAgent {}\n",
            cert_agent_binary().display(),
            self.control.display(),
            self.ssh_agent.socket.display(),
        )
    }

    fn ssh(&self) -> Output {
        self.sshd.ssh(&self.ssh_config(), "echo hello from sshd")
    }

    fn assert_ssh_works(&self) {
        let output = self.ssh();
        assert!(
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).contains("hello from sshd"),
            "ssh failed ({}): {}\nssh-agent holds: {}\ncertificate agent: {}\nsshd: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.ssh_agent.list(),
            self.cert_agent_log(),
            self.sshd.log_text(),
        );
    }

    fn cert_agent_log(&self) -> String {
        std::fs::read_to_string(&self.cert_agent_log).unwrap_or_default()
    }

    /// The plugin runs the certificate agent's broker has made, as its last
    /// "loaded certificate" line says.
    fn plugin_runs(&self) -> u64 {
        self.cert_agent_log()
            .lines()
            .filter_map(|line| line.split("plugin runs so far: ").nth(1))
            .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
            .next_back()
            .unwrap_or(0)
    }

    /// Waits until every certificate issued so far has expired.
    fn wait_for_expiry(&self, validity: Duration) {
        std::thread::sleep(validity + Duration::from_millis(1200));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.cert_agent.kill();
        let _ = self.cert_agent.wait();
    }
}

fn cert_agent_binary() -> PathBuf {
    workspace_example("authplug-broker", "ssh_cert_agent")
}

/// authplug-oidc for the dev IdP: its command line.
fn plugin_argv(issuer: &str, driver: &LoggedDriver) -> Vec<String> {
    let mut argv = vec![plugin_binary().display().to_string()];
    argv.extend(plugin_args(issuer, driver));
    argv
}

/// authplug-oidc's arguments for the dev IdP (`dev_args`): JWT access
/// tokens for the CA that live as long as the IdP says, logins through
/// `driver`.
fn plugin_args(issuer: &str, driver: &LoggedDriver) -> Vec<String> {
    let mut args = dev_args(issuer, &driver.command);
    args.extend(
        [
            "--token",
            "access",
            "--resource",
            CA_RESOURCE,
            "--skew",
            "0",
        ]
        .map(str::to_owned),
    );
    args
}

#[test]
fn the_first_ssh_logs_in_once_and_later_ones_reuse_the_certificate() {
    let world = World::start(Setup::default());
    world.assert_ssh_works();
    assert_eq!(world.driver.logins(), 1, "{}", world.driver.log());
    assert_eq!(world.ca.issued(), 1);
    let loaded = world.ssh_agent.list();
    assert!(
        loaded.contains("ssh-ed25519-cert-v01@openssh.com"),
        "ssh-agent holds the certificate: {loaded}"
    );
    world.assert_ssh_works();
    world.assert_ssh_works();
    assert_eq!(world.ca.issued(), 1, "a valid certificate is reused");
    assert_eq!(world.plugin_runs(), 1);
    assert_eq!(world.driver.logins(), 1);
    let sshd_log = world.sshd.log_text();
    assert!(
        sshd_log.contains("Accepted publickey") && sshd_log.contains("ED25519-CERT"),
        "sshd let the certificate in: {sshd_log}"
    );
}

#[test]
fn an_expired_certificate_is_renewed_without_a_login() {
    let validity = Duration::from_secs(4);
    let world = World::start(Setup {
        validity,
        ..Setup::default()
    });
    world.assert_ssh_works();
    world.wait_for_expiry(validity);
    world.assert_ssh_works();
    assert!(world.ca.issued() >= 2, "a new certificate was issued");
    assert_eq!(
        world.driver.logins(),
        1,
        "no second login: {}",
        world.driver.log()
    );
}

#[test]
fn a_token_the_ca_refuses_is_healed_by_a_refresh_without_a_login() {
    let validity = Duration::from_secs(4);
    let world = World::start(Setup {
        validity,
        ..Setup::default()
    });
    world.assert_ssh_works();
    let first = world.ca.accepted_tokens();
    assert!(world.ca.refuse_last_token());
    world.wait_for_expiry(validity);
    world.assert_ssh_works();
    let log = world.cert_agent_log();
    assert!(
        world.ca.refused() >= 1,
        "the CA refused the old token: {log}"
    );
    assert!(
        log.contains("the CA refused the token; asking the plugin for a new one"),
        "{log}"
    );
    let accepted = world.ca.accepted_tokens();
    assert_ne!(accepted.last(), first.last(), "a new token was accepted");
    assert!(world.plugin_runs() >= 2, "the plugin ran again: {log}");
    assert_eq!(
        world.driver.logins(),
        1,
        "a refresh, not a login: {}",
        world.driver.log()
    );
}

#[test]
fn ten_ssh_at_once_share_one_plugin_run_and_one_certificate() {
    let world = World::start(Setup::default());
    let config = world.ssh_config();
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| scope.spawn(|| world.sshd.ssh(&config, "echo hello from sshd")))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("an ssh thread"))
            .collect()
    });
    for output in &outputs {
        assert!(
            output.status.success(),
            "ssh failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            world.cert_agent_log()
        );
    }
    assert_eq!(world.plugin_runs(), 1, "{}", world.cert_agent_log());
    assert_eq!(world.ca.issued(), 1);
    assert_eq!(world.driver.logins(), 1);
}

#[test]
fn a_principal_the_ca_does_not_grant_is_refused_by_sshd() {
    // The CA names the token's `sub` (alice); this account takes only `ops`.
    let world = World::start(Setup {
        principals: &["ops"],
        ..Setup::default()
    });
    let output = world.ssh();
    assert!(
        !output.status.success(),
        "ssh got in as a principal not granted"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        world.ca.issued(),
        1,
        "the certificate was issued, for alice"
    );
    let sshd_log = world.sshd.log_text();
    assert!(
        sshd_log.contains("Certificate does not contain an authorized principal"),
        "sshd says why: {sshd_log}"
    );
}

#[test]
fn no_token_reaches_any_log() {
    let validity = Duration::from_secs(4);
    let world = World::start(Setup {
        validity,
        ..Setup::default()
    });
    world.assert_ssh_works();
    assert!(world.ca.refuse_last_token());
    world.wait_for_expiry(validity);
    let output = world.ssh();
    assert!(output.status.success());
    let tokens = world.ca.accepted_tokens();
    assert!(tokens.len() >= 2, "a refused and a fresh token: {tokens:?}");
    let logs = [
        ("the certificate agent", world.cert_agent_log()),
        ("sshd", world.sshd.log_text()),
        ("ssh", String::from_utf8_lossy(&output.stderr).into_owned()),
        ("the login driver", world.driver.log()),
    ];
    for (name, log) in &logs {
        for token in &tokens {
            // Any third of a JWT (header, claims or signature) would be a leak.
            for part in token.split('.') {
                assert!(!log.contains(part), "{name}'s log holds a token: {log}");
            }
        }
        assert!(
            !log.contains("eyJ"),
            "{name}'s log holds something JWT-shaped: {log}"
        );
    }
}

/// The certificate flow as an epithet-style agent runs it: the plugin with
/// no `AUTHPLUG_*` variables, state on stdin, a pipe on fd 3; after the
/// CA's 401 the host runs it again with its state (it cannot say why), and
/// must get a token the CA has not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epithet_host_heals_a_token_the_ca_refused() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let ca = CertAuthority::new(&idp.issuer, CA_RESOURCE, "sub", Duration::from_secs(300))
        .await
        .expect("the CA gets the IdP's keys");
    let ca_url = ca.serve().await.expect("the CA listens");
    let sshd = Sshd::start(&ca.public_key_line(), &["alice"]).expect("sshd starts");
    let driver = LoggedDriver::http(&[]);
    let keys = tempfile::tempdir().expect("a temporary directory");
    let key = user_key(keys.path());

    let run = Run::new(&plugin_args(&idp.issuer, &driver)).epithet_host();
    let first = run.go().await.expect("the first run logs in");
    let first_token = token_text(&first);
    assert_eq!(certify(&ca_url, &first_token, &key).await.0, 200);
    assert_eq!(ssh_with_key(&sshd, &key).status.code(), Some(0));

    // The CA stops accepting that token; the host re-runs with the state.
    assert!(ca.refuse_last_token());
    assert_eq!(certify(&ca_url, &first_token, &key).await.0, 401);
    let state: State = first.state.clone();
    let second = Run::new(&plugin_args(&idp.issuer, &driver))
        .epithet_host()
        .state(&state)
        .go()
        .await
        .expect("the re-run refreshes");
    let second_token = token_text(&second);
    assert_ne!(second_token, first_token, "not the refused token again");
    let (status, body) = certify(&ca_url, &second_token, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ssh_with_key(&sshd, &key).status.code(),
        Some(0),
        "{}",
        sshd.log_text()
    );
    assert_eq!(
        driver.logins(),
        1,
        "a refresh, not a login: {}",
        driver.log()
    );
}

/// A user key pair made by ssh-keygen (an epithet agent's own key; on disk
/// here only because this host is the test).
fn user_key(dir: &Path) -> PathBuf {
    let key = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    key
}

/// Asks the CA for a certificate for `key`, writing it beside the key;
/// the status and body.
async fn certify(ca_url: &str, token: &str, key: &Path) -> (u16, String) {
    let public_key = std::fs::read_to_string(key.with_extension("pub")).expect("the public key");
    let response = reqwest::Client::new()
        .post(format!("{ca_url}/certificate"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "public_key": public_key.trim() }).to_string())
        .send()
        .await
        .expect("the CA answers");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status == 200 {
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let certificate = answer["certificate"].as_str().expect("a certificate");
        let path = PathBuf::from(format!("{}-cert.pub", key.display()));
        std::fs::write(path, format!("{certificate}\n")).expect("the certificate is written");
    }
    (status, body)
}

fn ssh_with_key(sshd: &Sshd, key: &Path) -> Output {
    let key = key.display().to_string();
    sshd.ssh_with("", &["-o", "IdentitiesOnly=yes", "-i", &key], "true")
}

/// `authplug token --profile NAME` as an epithet-style host's `--auth`
/// plugin, so the host shares the agent's one login: it autostarts the
/// agent (whose copy of fd 3 would hold the host's run up, if it had one),
/// hands back the token it printed as its state, and when the host re-runs
/// it with that state (no reason, as after the CA's 401) it rejects that
/// token in the agent first, so the host gets a fresh one from a refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epithet_host_running_authplug_token_heals_through_the_agent() {
    use authplug_protocol::host::{run, PluginCommand, RunOptions};

    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let ca = CertAuthority::new(&idp.issuer, CA_RESOURCE, "sub", Duration::from_secs(300))
        .await
        .expect("the CA gets the IdP's keys");
    let ca_url = ca.serve().await.expect("the CA listens");
    let driver = LoggedDriver::http(&[]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("config.toml");
    let profile_command =
        serde_json::to_string(&shell_words::join(plugin_argv(&idp.issuer, &driver)))
            .expect("a TOML string");
    std::fs::write(
        &config,
        format!("[profiles.ssh]\ncommand = {profile_command}\n"),
    )
    .expect("the config is written");
    let socket = dir.path().join("agent.sock");
    let key = user_key(dir.path());

    let mut argv = as_epithet_runs_it();
    argv.push(authplug_tests::authplug_binary().into());
    argv.extend([
        "token".into(),
        "--profile".into(),
        "ssh".into(),
        "--config".into(),
    ]);
    argv.push(config.clone().into());
    argv.push("--socket".into());
    argv.push(socket.clone().into());
    let epithet = PluginCommand::from_argv(argv).expect("an argv");
    let mut options = RunOptions::default();
    // A run held up by an inherited fd 3 would end here, failed.
    options.timeout = Duration::from_secs(30);
    options.env = vec![
        ("BROWSER".into(), "".into()),
        ("RUST_LOG".into(), "".into()),
    ];

    let first = run(&epithet, &State::default(), &options)
        .await
        .expect("the first run logs in");
    let first_token = token_text(&first);
    assert!(!first.state.is_empty(), "authplug token hands back a state");
    assert_eq!(certify(&ca_url, &first_token, &key).await.0, 200);

    assert!(ca.refuse_last_token());
    assert_eq!(certify(&ca_url, &first_token, &key).await.0, 401);
    let second = run(&epithet, &first.state, &options)
        .await
        .expect("the re-run gets a token");
    let second_token = token_text(&second);
    assert_ne!(second_token, first_token, "not the refused token again");
    let (status, body) = certify(&ca_url, &second_token, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        driver.logins(),
        1,
        "a refresh in the agent, not a login: {}",
        driver.log()
    );

    // A host that says why (our protocol's `refresh`) gets the agent's
    // token as it is.
    let mut refresh = options.clone();
    refresh.reason = Some(authplug_protocol::Reason::Refresh);
    let by_protocol_argv = {
        let mut argv: Vec<std::ffi::OsString> = vec![authplug_tests::authplug_binary().into()];
        argv.extend([
            "token".into(),
            "--profile".into(),
            "ssh".into(),
            "--socket".into(),
        ]);
        argv.push(socket.clone().into());
        PluginCommand::from_argv(argv).expect("an argv")
    };
    let third = run(&by_protocol_argv, &second.state, &refresh)
        .await
        .expect("a token");
    assert_eq!(token_text(&third), second_token);

    let _ = Command::new(authplug_tests::authplug_binary())
        .arg("stop")
        .arg("--socket")
        .arg(&socket)
        .status();
}
