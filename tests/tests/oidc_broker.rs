//! Through the broker: the `authplug` agent with an `authplug-oidc` profile
//! against the real dev IdP (scripts/dev-idp, npm oidc-provider), logging in
//! once with the HTTP login driver, and a resource server that validates the
//! JWT access tokens as an API would: RS256 signature against the IdP's
//! JWKS, issuer, audience, expiry. After a revocation or an expiry it answers
//! 401, and the agent's re-run refreshes without a browser.

mod oidc_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use oidc_support::{
    fetch_jwks, plugin_binary, unix_now, verify_jwt, workspace_binary, DevIdp, LoggedDriver,
};

const API: &str = "https://api.example/v1";

/// The resource server. oidc-provider's JWT access tokens are
/// self-contained: once issued, nothing at the IdP (revoking the grant
/// included) changes what a server that checks them locally sees. So a
/// revocation the API honours is its own deny list by `jti`, as a server
/// fed by a revocation or logout event would keep; expiry comes from the
/// IdP's short access-token lifetime.
struct Api {
    issuer: String,
    jwks: jsonwebtoken::jwk::JwkSet,
    revoked: Mutex<HashSet<String>>,
}

/// 200 for a valid JWT for this API that is not on the deny list; 401
/// otherwise.
async fn api(AxState(api): AxState<Arc<Api>>, headers: HeaderMap) -> StatusCode {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED;
    };
    match verify_jwt(token, &api.jwks, &api.issuer, API) {
        Ok((_, claims))
            if !api
                .revoked
                .lock()
                .unwrap()
                .contains(claims["jti"].as_str().unwrap_or_default()) =>
        {
            StatusCode::OK
        }
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn call_api(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

fn authplug_binary() -> &'static Path {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("authplug-broker", "authplug"))
}

async fn authplug(socket: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(authplug_binary());
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
    let api_state = Arc::new(Api {
        issuer: idp.issuer.clone(),
        jwks: fetch_jwks(&idp.issuer).await,
        revoked: Mutex::new(HashSet::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/api", get(api))
        .with_state(Arc::clone(&api_state));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let driver = LoggedDriver::http(&[]);
    let command = shell_words::join([
        plugin_binary().to_str().unwrap(),
        "--issuer",
        &idp.issuer,
        "--client-id",
        "demo",
        "--flow",
        "browser",
        "--token",
        "access",
        "--resource",
        API,
        "--skew",
        "0",
        "--login-timeout",
        "20",
        "--browser-command",
        &driver.command,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.oidc]\ncommand = {}\nskew = 0\ntimeout = 30\n",
            toml_string(&command)
        ),
    )
    .unwrap();
    let socket = dir.path().join("run/agent.sock");
    let mut agent = tokio::process::Command::new(authplug_binary())
        .args(["agent", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .env_remove("RUST_LOG")
        .env("BROWSER", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the agent starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the agent did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // First: a login through the IdP's login form.
    let (first, _) = token(&socket).await;
    assert_eq!(call_api(&api_base, &first).await, 200);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let (again, _) = token(&socket).await;
    assert_eq!(again, first, "the agent hands out its cached token");

    // Revoked at the API: 401; `authplug reject` and the next `token`
    // refresh it.
    let (_, claims) = verify_jwt(&first, &api_state.jwks, &idp.issuer, API).unwrap();
    api_state
        .revoked
        .lock()
        .unwrap()
        .insert(claims["jti"].as_str().expect("a jti").to_owned());
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
    let (_, claims) = verify_jwt(&second, &api_state.jwks, &idp.issuer, API).unwrap();
    let expires = claims["exp"].as_i64().unwrap();
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
    server.abort();
}

fn toml_string(value: &str) -> String {
    // A TOML basic string is a JSON string for our purposes.
    serde_json::to_string(value).unwrap()
}
