//! Through the broker: the `authplug` agent with an `authplug-oidc` profile
//! against the real dev IdP (scripts/dev-idp, npm oidc-provider), logging in
//! once with the HTTP login driver, and a resource server that validates the
//! JWT access tokens as an API would (`authplug_tests::resource_server`:
//! signature against the IdP's JWKS, issuer, audience, expiry). After a
//! revocation or an expiry it answers 401, and the agent's re-run refreshes
//! without a browser.

mod oidc_support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use authplug_broker::{Broker, BrokerOptions, PluginCommand};
use authplug_tests::resource_server::ResourceServer;
use oidc_support::{access_token_argv, jwt_claims, start_agent, unix_now, DevIdp, LoggedDriver};

const API: &str = "https://api.example/v1";

/// `GET /whoami` with the token: the status code.
async fn call_api(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

fn plugin_argv(idp: &DevIdp, driver: &LoggedDriver) -> Vec<String> {
    access_token_argv(idp, driver, API)
}

async fn authplug(socket: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(authplug_tests::authplug_binary());
    command
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("authplug runs");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn token(socket: &Path) -> (String, String) {
    let (ok, stdout, stderr) = authplug(
        socket,
        &["token", "--no-autostart", "--profile", "oidc"],
        None,
    )
    .await;
    assert!(ok, "authplug token failed: {stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_heals_a_401_by_refreshing_without_a_browser() {
    // Access tokens live 3 s, so the expiry below comes quickly.
    let idp = DevIdp::start(r#"{"ttl":{"accessToken":3}}"#).expect("the dev IdP starts");
    let api = ResourceServer::new(&idp.issuer, API)
        .await
        .expect("the API gets the IdP's keys");
    let api_base = api.serve().await.expect("the API listens");

    let driver = LoggedDriver::http(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, socket) = start_agent(dir.path(), "oidc", &plugin_argv(&idp, &driver)).await;

    // First: a login through the IdP's login form.
    let (first, _) = token(&socket).await;
    assert_eq!(call_api(&api_base, &first).await, 200);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let (again, _) = token(&socket).await;
    assert_eq!(again, first, "the agent hands out its cached token");

    // Revoked at the API (as a logout event would tell it): 401;
    // `authplug reject` and the next `token` refresh it.
    api.revoke(&first);
    assert_eq!(call_api(&api_base, &first).await, 401);
    let (ok, _, stderr) = authplug(
        &socket,
        &["reject", "--profile", "oidc"],
        Some(&format!("{first}\n")),
    )
    .await;
    assert!(ok, "{stderr}");
    let (second, _) = token(&socket).await;
    assert_ne!(second, first);
    assert_eq!(call_api(&api_base, &second).await, 200);

    // Expired: 401, and the agent's next run refreshes on its own.
    let expires = jwt_claims(&second)["exp"].as_i64().expect("an exp");
    while unix_now() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(call_api(&api_base, &second).await, 401);
    let (third, _) = token(&socket).await;
    assert_ne!(third, second);
    assert_eq!(call_api(&api_base, &third).await, 200);

    assert_eq!(
        driver.logins(),
        1,
        "the refreshes never opened a browser: {}",
        driver.log()
    );
    let _ = authplug(&socket, &["stop"], None).await;
    let _ = agent.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_helper_heals_a_401_by_refreshing_without_a_browser() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let api = ResourceServer::new(&idp.issuer, API)
        .await
        .expect("the API gets the IdP's keys");
    let whoami = format!("{}/whoami", api.serve().await.expect("the API listens"));
    let driver = LoggedDriver::http(&[]);
    let command = PluginCommand::from_argv(plugin_argv(&idp, &driver)).expect("an argv");
    let broker = Broker::new(command, BrokerOptions::default());
    let http = reqwest::Client::new();

    let response = broker.send(http.get(&whoami)).await.expect("a response");
    assert_eq!(response.status(), 200);
    assert_eq!(driver.logins(), 1, "{}", driver.log());

    // The API stops accepting the token the broker holds: the helper sees
    // the 401, rejects that token, the plugin refreshes, the retry passes.
    let held = broker.token().await.expect("the cached token");
    api.revoke(held.to_str().expect("a UTF-8 token"));
    let response = broker.send(http.get(&whoami)).await.expect("a response");
    assert_eq!(response.status(), 200, "healed by the retry");
    let fresh = broker.token().await.expect("the new token");
    assert_ne!(fresh.as_bytes(), held.as_bytes());
    assert_eq!(
        driver.logins(),
        1,
        "the refresh opened no browser: {}",
        driver.log()
    );
    let status = broker.status();
    assert_eq!(status.runs, 2, "one login, one refresh: {status:?}");
    let last = status.last_run.expect("a last run");
    assert_eq!((last.reason.as_str(), last.ok), ("rejected", true));
}
