//! Through the broker: the `authplug` agent with an `authplug-oidc` profile
//! against the stub provider (oidc_support/stub.rs, which issues
//! EdDSA-signed JWT access tokens for a resource indicator), and a resource
//! server that checks those JWTs (signature against the provider's key,
//! audience, expiry, a revocation list). After a revocation or an expiry the
//! server answers 401, and the agent's re-run refreshes without a browser.

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
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use oidc_support::stub::{Case, Stub};
use oidc_support::{jwt_claims, plugin_binary, workspace_binary};

const API: &str = "https://api.example";

struct Api {
    key: VerifyingKey,
    revoked: Mutex<HashSet<String>>,
}

/// 200 for a JWT signed by the provider, for this API, unexpired and not
/// revoked; 401 otherwise.
async fn api(AxState(api): AxState<Arc<Api>>, headers: HeaderMap) -> StatusCode {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED;
    };
    let Some((input, signature)) = token.rsplit_once('.') else {
        return StatusCode::UNAUTHORIZED;
    };
    let Some(signature) = B64
        .decode(signature)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
    else {
        return StatusCode::UNAUTHORIZED;
    };
    if api.key.verify(input.as_bytes(), &signature).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let claims = jwt_claims(token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    if claims["aud"] != API
        || claims["exp"].as_i64().unwrap_or(0) <= now
        || api.revoked.lock().unwrap().contains(&jti)
    {
        return StatusCode::UNAUTHORIZED;
    }
    StatusCode::OK
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
    let stub = Stub::start(Case::Honest).await;
    stub.access_token_ttl
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let api_state = Arc::new(Api {
        key: stub.verifying_key(),
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

    let dir = tempfile::tempdir().unwrap();
    let browser_log = dir.path().join("browser.log");
    // The "browser": notes each call, then follows the login redirect.
    let browser = format!(
        "sh -c 'echo opened >> {}; exec curl -sS -L -o /dev/null \"$0\"'",
        browser_log.display()
    );
    let command = shell_words::join([
        plugin_binary().to_str().unwrap(),
        "--issuer",
        &stub.issuer,
        "--client-id",
        "stub-client",
        "--token",
        "access",
        "--resource",
        API,
        "--skew",
        "0",
        "--login-timeout",
        "10",
        "--browser-command",
        &browser,
    ]);
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

    // First: a login in the "browser".
    let (first, _) = token(&socket).await;
    assert_eq!(jwt_claims(&first)["aud"], API);
    assert_eq!(call_api(&api_base, &first).await, 200);
    let opened = || {
        std::fs::read_to_string(&browser_log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(opened(), 1);

    // Revoked at the API: 401, reported, and the re-run refreshes.
    api_state
        .revoked
        .lock()
        .unwrap()
        .insert(jwt_claims(&first)["jti"].as_str().unwrap().to_owned());
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

    // Expired (the stub's access tokens live 3 s): 401, and the agent's
    // next run refreshes on its own.
    let expires = jwt_claims(&second)["exp"].as_i64().unwrap();
    while (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64)
        <= expires
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(call_api(&api_base, &second).await, 401);
    let (third, _) = token(&socket).await;
    assert_ne!(third, second);
    assert_eq!(call_api(&api_base, &third).await, 200);

    assert_eq!(opened(), 1, "the refreshes never opened a browser");
    assert_eq!(
        stub.grant_types(),
        ["authorization_code", "refresh_token", "refresh_token"]
    );
    let _ = authplug(&socket, &["stop"], None).await;
    let _ = agent.wait().await;
    server.abort();
}

fn toml_string(value: &str) -> String {
    // A TOML basic string is a JSON string for our purposes.
    serde_json::to_string(value).unwrap()
}
