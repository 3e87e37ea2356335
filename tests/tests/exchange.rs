//! authplug-exchange through the real agent: the subject token is the dev
//! IdP's ID token from another profile (`subject_profile`), traded at
//! stand-ins (scripts/standins/exchange_server.py) that check it against
//! the IdP's keys: an MCP-registry-style JSON exchange, and an RFC 8693 STS
//! (oidc-provider has no token exchange, so the STS is a stand-in too).
//!
//! - The registry token serves curl through `authplug exec`; a subject token
//!   the registry calls stale is healed by a refresh of the subject profile
//!   (no login); a logout of the subject logs the chain out.
//! - A claim rule the login does not meet is reported plainly, never retried.
//! - RFC 8693: the token and its expiry; `invalid_target`, `invalid_client`
//!   and a stale subject a command cannot renew, each said plainly.
//! - Concurrent callers at the top of a chain: one run at each level; a
//!   401 on the top token runs only the exchange again.

mod oidc_support;

use std::path::Path;

use authplug_tests::standins::Standin;
use oidc_support::{
    authplug_at as authplug, dev_args, plugin_binary, start_agent_with_config, stderr, DevIdp,
    LoggedDriver,
};

fn exchange_binary() -> std::path::PathBuf {
    authplug_tests::workspace_binary("authplug-exchange", "authplug-exchange")
}

/// A TOML string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}

/// The profile `work` (authplug-oidc, ID tokens, logins through the
/// `browser` command) and `more` profiles' TOML.
fn config(idp: &DevIdp, browser: &str, more: &str) -> String {
    let mut work = vec![plugin_binary().display().to_string()];
    work.extend(dev_args(&idp.issuer, browser));
    format!(
        "[profiles.work]\ncommand = {}\nskew = 0\ntimeout = 30\n\n{more}",
        toml_string(&shell_words::join(&work))
    )
}

/// A profile running authplug-exchange with `args`, built on `work`.
fn exchange_profile(name: &str, args: &[&str], extra: &str) -> String {
    let mut argv = vec![exchange_binary().display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(["--http-timeout".into(), "5".into()]);
    format!(
        "[profiles.{name}]\ncommand = {}\nsubject_profile = \"work\"\ntimeout = 30\n{extra}\n",
        toml_string(&shell_words::join(&argv))
    )
}

fn registry_args(registry: &Standin) -> Vec<String> {
    [
        "--format",
        "json",
        "--endpoint",
        &format!("{}/registry/auth", registry.url),
        "--json-field",
        "oidc_token",
        "--token-field",
        "registry_token",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `curl` of the stand-in's API with the profile's token, through
/// `authplug exec`; whether it answered 200.
/// The dev IdP, the registry stand-in (`registry_extra`: its flags), and an
/// agent with `work` (logins through what `browser` makes of the HTTP login
/// driver) and `registry` built on it. A test binds it by reference (`let
/// Chain { .. } = &chain(..).await`), so that what it does not name (the
/// IdP, the agent) lives to the test's end.
struct Chain {
    _idp: DevIdp,
    driver: LoggedDriver,
    registry: Standin,
    socket: std::path::PathBuf,
    _agent: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn chain(registry_extra: &[&str], browser: impl Fn(&LoggedDriver) -> String) -> Chain {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let driver = LoggedDriver::http(&[]);
    let mut standin_args = vec![idp.issuer.as_str(), "demo"];
    standin_args.extend(registry_extra);
    let registry = Standin::start("exchange_server.py", &standin_args);
    let args = registry_args(&registry);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &idp,
        &browser(&driver),
        &exchange_profile("registry", &args, ""),
    );
    let (agent, socket) = start_agent_with_config(dir.path(), &text).await;
    Chain {
        _idp: idp,
        driver,
        registry,
        socket,
        _agent: agent,
        _dir: dir,
    }
}

async fn curl_through_exec(socket: &Path, profile: &str, url: &str) -> bool {
    let script =
        format!("curl -sf -o /dev/null -H \"Authorization: Bearer $AUTHPLUG_TOKEN\" {url}");
    let output = tokio::process::Command::new(authplug_tests::authplug_binary())
        .args([
            "exec",
            "--non-interactive",
            "--profile",
            profile,
            "--socket",
        ])
        .arg(socket)
        .args(["--", "sh", "-c", &script])
        .output()
        .await
        .expect("authplug exec runs");
    if !output.status.success() {
        eprintln!("authplug exec --profile {profile}: {}", stderr(&output));
    }
    output.status.success()
}

async fn status(socket: &Path, profile: &str) -> serde_json::Value {
    let output = authplug(socket, &["status", "--json"]).await;
    let all: serde_json::Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    (all.as_array().expect("a list").iter())
        .find(|p| p["name"] == profile)
        .cloned()
        .expect("the profile")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_token_serves_curl_and_a_stale_subject_heals_without_a_login() {
    let Chain {
        driver,
        registry,
        socket,
        ..
    } = &chain(&[], |driver| driver.command.clone()).await;
    let api = format!("{}/api/whoami", registry.url);

    // The first login: one, through the subject profile.
    let first = authplug(socket, &["token", "--profile", "registry"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let token = String::from_utf8(first.stdout).unwrap();
    assert!(token.starts_with("reg_"), "{token}");
    assert!(curl_through_exec(socket, "registry", &api).await);
    assert_eq!(driver.logins(), 1);
    assert!(
        status(socket, "registry").await["expires_at"].is_u64(),
        "the registry's expires_at reached the agent"
    );

    // The registry now calls the ID token stale, and has revoked its own.
    registry.hook("refuse-subjects").await;
    registry.hook("revoke").await;
    // An ID token is stamped to the second (`iat`) and signed
    // deterministically (RS256): one refreshed within the same second as the
    // last would be the very same token.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(
        !curl_through_exec(socket, "registry", &api).await,
        "the revoked token is refused"
    );
    let reject = authplug(socket, &["reject", "--profile", "registry", "--current"]).await;
    assert!(reject.status.success(), "{}", stderr(&reject));
    assert!(
        curl_through_exec(socket, "registry", &api).await,
        "healed by a new exchange of a refreshed subject token"
    );
    let stats = registry.stats().await;
    assert_eq!(stats["refused_subject"], 1, "{stats}");
    assert_eq!(stats["issued"], 2, "{stats}");
    assert_eq!(driver.logins(), 1, "no second login");
    let work = status(socket, "work").await;
    assert_eq!(work["runs"], 2, "a login and one refresh: {work}");
    assert_eq!(work["last_run"]["reason"], "rejected", "{work}");

    // A logout of the subject ends the chain.
    let logout = authplug(socket, &["logout", "--profile", "work"]).await;
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert!(
        stderr(&logout).contains("logged out `registry` too"),
        "{}",
        stderr(&logout)
    );
    let registry_status = status(socket, "registry").await;
    assert_eq!(registry_status["has_token"], false, "{registry_status}");
    assert_eq!(registry_status["has_state"], false, "{registry_status}");
    let after = authplug(
        socket,
        &["token", "--profile", "registry", "--non-interactive"],
    )
    .await;
    assert_eq!(
        after.status.code(),
        Some(4),
        "a login is needed, said down the chain by kind: {}",
        stderr(&after)
    );
    assert_eq!(
        driver.logins(),
        1,
        "a non-interactive run opened no browser"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_rule_the_login_fails_is_said_plainly_and_not_retried() {
    let Chain {
        registry, socket, ..
    } = &chain(&["--require-claim", "hd=example.com"], |driver| {
        driver.command.clone()
    })
    .await;

    let output = authplug(socket, &["token", "--profile", "registry"]).await;
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(said.contains("hd=example.com"), "{said}");
    assert!(said.contains("HTTP 403"), "{said}");
    assert!(
        said.contains("a fresh login would not change its answer"),
        "{said}"
    );
    let stats = registry.stats().await;
    assert_eq!(stats["exchanges"], 1, "never retried: {stats}");
    assert_eq!(stats["refused_claims"], 1, "{stats}");
    assert_eq!(stats["refused_subject"], 0, "{stats}");
    assert_eq!(
        status(socket, "work").await["runs"],
        1,
        "the subject was not rejected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8693_issues_a_token_with_its_expiry_and_its_errors_are_said_plainly() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let driver = LoggedDriver::http(&[]);
    let sts = Standin::start(
        "exchange_server.py",
        &[
            &idp.issuer,
            "demo",
            "--sts-audience",
            "api.example",
            "--ttl",
            "600",
        ],
    );
    let endpoint = format!("{}/sts/token", sts.url);
    let args = [
        "--endpoint",
        &endpoint,
        "--audience",
        "api.example",
        "--client-id",
        "sts-client",
    ];
    let profile = exchange_profile(
        "sts",
        &args,
        "env = { AUTHPLUG_EXCHANGE_CLIENT_SECRET = \"sts-secret\" }",
    );
    let dir = tempfile::tempdir().unwrap();
    let (_agent, socket) =
        start_agent_with_config(dir.path(), &config(&idp, &driver.command, &profile)).await;

    let output = authplug(&socket, &["token", "--profile", "sts"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let expires_at = status(&socket, "sts").await["expires_at"]
        .as_u64()
        .expect("an expiry");
    let now = oidc_support::unix_now() as u64;
    assert!(
        (now + 590..=now + 601).contains(&expires_at),
        "expires_in 600 became {expires_at} (now {now})"
    );

    // The plugin under `authplug run`, its subject from a command.
    let subject = format!(
        "{} token --profile work --no-autostart --socket {}",
        authplug_tests::authplug_binary().display(),
        socket.display()
    );
    let state = dir.path().join("sts.state");
    let run_keeping = |extra: &[&str], secret: &str, state_out: Option<&Path>| {
        let mut command = std::process::Command::new(authplug_tests::authplug_binary());
        command.arg("run");
        if let Some(path) = state_out {
            command.arg("--state-out").arg(path);
        }
        command
            .arg("--")
            .arg(exchange_binary())
            .args([
                "--endpoint",
                &endpoint,
                "--client-id",
                "sts-client",
                "--subject-command",
                &subject,
            ])
            .args(extra)
            .env("AUTHPLUG_EXCHANGE_CLIENT_SECRET", secret)
            .env_remove("AUTHPLUG_SOCKET");
        command.output().expect("authplug run runs")
    };
    let run = |extra: &[&str], secret: &str| run_keeping(extra, secret, None);
    let fine = run_keeping(&["--audience", "api.example"], "sts-secret", Some(&state));
    assert!(fine.status.success(), "{}", stderr(&fine));
    // The state holds the new token, never the subject token.
    let kept = std::fs::read_to_string(&state).expect("the state");
    let id_token = authplug(&socket, &["token", "--profile", "work", "--no-autostart"]).await;
    let id_token = String::from_utf8(id_token.stdout).unwrap();
    assert!(
        kept.contains(String::from_utf8_lossy(&fine.stdout).trim_end()),
        "{kept}"
    );
    assert!(
        !kept.contains(id_token.trim_end()),
        "the subject token was kept"
    );
    let target = run(&["--audience", "elsewhere"], "sts-secret");
    assert!(!target.status.success());
    assert!(
        stderr(&target).contains("invalid_target") && stderr(&target).contains("--audience"),
        "{}",
        stderr(&target)
    );
    let client = run(&["--audience", "api.example"], "wrong");
    assert!(!client.status.success());
    assert!(
        stderr(&client).contains("invalid_client") && stderr(&client).contains("--client-id"),
        "{}",
        stderr(&client)
    );
    sts.hook("refuse-subjects").await;
    let before = sts.stats().await["exchanges"].as_u64().unwrap();
    let stale = run(&["--audience", "api.example"], "sts-secret");
    assert!(!stale.status.success());
    assert!(
        stderr(&stale).contains("invalid_grant")
            && stderr(&stale).contains("and it has no other to give"),
        "{}",
        stderr(&stale)
    );
    assert_eq!(
        sts.stats().await["exchanges"].as_u64().unwrap(),
        before + 1,
        "the command gave the same token again: not traded twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_at_the_top_of_a_chain_share_one_run_at_each_level() {
    // The login takes a second: every caller asks while it runs.
    let Chain {
        driver,
        registry,
        socket,
        ..
    } = &chain(&[], |driver| {
        format!(
            "sh -c {} {}",
            shell_words::quote("sleep 1; exec \"$0\" \"$@\""),
            driver.command
        )
    })
    .await;

    let callers: Vec<_> = (0..6)
        .map(|_| {
            let socket = socket.clone();
            tokio::spawn(
                async move { authplug(&socket, &["token", "--profile", "registry"]).await },
            )
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for caller in callers {
        let output = caller.await.expect("the caller");
        assert!(output.status.success(), "{}", stderr(&output));
        tokens.insert(String::from_utf8(output.stdout).unwrap());
    }
    assert_eq!(tokens.len(), 1, "one token for all");
    assert_eq!(status(socket, "registry").await["runs"], 1);
    assert_eq!(status(socket, "work").await["runs"], 1);
    assert_eq!(registry.stats().await["issued"], 1);
    assert_eq!(driver.logins(), 1);

    // A 401 on the top token runs only the exchange again.
    registry.hook("revoke").await;
    let reject = authplug(socket, &["reject", "--profile", "registry", "--current"]).await;
    assert!(reject.status.success(), "{}", stderr(&reject));
    let again = authplug(socket, &["token", "--profile", "registry"]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!tokens.contains(&String::from_utf8(again.stdout).unwrap()));
    assert_eq!(status(socket, "registry").await["runs"], 2);
    assert_eq!(
        status(socket, "work").await["runs"],
        1,
        "the login's token served as it was"
    );
    assert_eq!(registry.stats().await["issued"], 2);
}
