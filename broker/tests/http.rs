//! The reqwest helper against a real resource server on 127.0.0.1 that
//! accepts only the newest token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authplug_broker::{Broker, BrokerOptions, PluginCommand, TokenRequest};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;

#[derive(Clone, Default)]
struct ResourceServer {
    newest: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
}

async fn guarded(
    AxumState(server): AxumState<ResourceServer>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let newest = format!("Bearer {}", server.newest.lock().expect("newest").as_str());
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(given) if given == newest => (StatusCode::OK, "hello".into()),
        _ => (StatusCode::UNAUTHORIZED, "token refused".into()),
    }
}

/// Reads the whole body before answering, as a real server would.
async fn upload(
    server: AxumState<ResourceServer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let (status, text) = guarded(server, headers).await;
    (status, format!("{text} ({} bytes)", body.len()))
}

async fn start_server() -> (ResourceServer, String) {
    let server = ResourceServer::default();
    let app = Router::new()
        .route("/me", get(guarded))
        .route("/upload", post(upload))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (server, url)
}

fn counting_plugin(dir: &std::path::Path) -> PluginCommand {
    let script = dir.join("plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$AUTHPLUG_REASON\" >> '{0}/runs'\necho \"$AUTHPLUG_INTERACTIVE\" >> '{0}/interactive'\nstate=$(cat)\nnext=$(( ${{state:-0}} + 1 ))\nprintf '%s' $next >&3\necho tok-$next\n",
            dir.display()
        ),
    )
    .expect("write plugin");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    PluginCommand::new(script)
}

fn runs(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_401_is_healed_by_one_rerun_and_one_retry() {
    let (server, url) = start_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = BrokerOptions::default();
    options.run.timeout = Duration::from_secs(20);
    let broker = Broker::new(counting_plugin(dir.path()), options);
    let client = reqwest::Client::new();

    *server.newest.lock().expect("newest") = "tok-1".into();
    let response = broker
        .send(client.get(format!("{url}/me")))
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "hello");

    // The server moves on to a newer token: the cached tok-1 gets a 401.
    *server.newest.lock().expect("newest") = "tok-2".into();
    let response = broker
        .send(client.get(format!("{url}/me")))
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(runs(dir.path()), ["initial", "rejected"]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);

    // A body that can be replayed is sent again on the retry.
    *server.newest.lock().expect("newest") = "tok-3".into();
    let response = broker
        .send(client.post(format!("{url}/upload")).body("replayable"))
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.requests.load(Ordering::SeqCst), 5);
    // The server counted the retry's body: all of it came again.
    assert_eq!(response.text().await.expect("body"), "hello (10 bytes)");
}

#[tokio::test]
async fn a_streamed_body_is_never_sent_twice() {
    let (server, url) = start_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::new(counting_plugin(dir.path()), BrokerOptions::default());
    let client = reqwest::Client::new();
    *server.newest.lock().expect("newest") = "tok-2".into();

    let file_path = dir.path().join("upload.bin");
    std::fs::write(&file_path, b"streamed once").expect("upload file");
    let file = tokio::fs::File::open(&file_path).await.expect("open");
    let response = broker
        .send(client.post(format!("{url}/upload")).body(file))
        .await
        .expect("send");
    // Not retried: the caller gets the 401 and can rebuild its body...
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(runs(dir.path()), ["initial"]);
    // ...and the refused token was rejected, so the next request heals.
    assert!(broker.status().rejected);
    let response = broker
        .send(client.get(format!("{url}/me")))
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(runs(dir.path()), ["initial", "rejected"]);
}

#[tokio::test]
async fn send_with_gets_every_token_as_the_caller_asks() {
    let (server, url) = start_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::new(counting_plugin(dir.path()), BrokerOptions::default());
    *server.newest.lock().expect("newest") = "tok-2".into();
    // A daemon: no run it causes may open a browser, the retry's included.
    let quiet = TokenRequest::new().interactive(false);
    let response = broker
        .send_with(reqwest::Client::new().get(format!("{url}/me")), quiet)
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(runs(dir.path()), ["initial", "rejected"]);
    let interactive = std::fs::read_to_string(dir.path().join("interactive")).expect("log");
    assert_eq!(interactive, "0\n0\n");
}

#[tokio::test]
async fn with_no_retries_the_401_is_returned() {
    let (server, url) = start_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = BrokerOptions::default();
    options.unauthorized_retries = 0;
    let broker = Broker::new(counting_plugin(dir.path()), options);
    *server.newest.lock().expect("newest") = "never".into();
    let response = broker
        .send(reqwest::Client::new().get(format!("{url}/me")))
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

/// A server that wants the scope `admin` (RFC 6750 §3.1): a token without
/// it (any but `tok-2` and later) gets 403 `insufficient_scope` naming the
/// scopes, with other challenges around it.
async fn scoped(headers: HeaderMap) -> (StatusCode, HeaderMap, String) {
    let mut answer = HeaderMap::new();
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer tok-1") => {
            answer.insert(
                "www-authenticate",
                r#"Bearer realm="api", error="insufficient_scope", scope="api admin""#
                    .parse()
                    .expect("a header"),
            );
            (StatusCode::FORBIDDEN, answer, "more scope".into())
        }
        Some(_) => (StatusCode::OK, answer, "hello".into()),
        None => (StatusCode::UNAUTHORIZED, answer, "no token".into()),
    }
}

/// A 403 that asks for more scopes is healed like a 401, and the plugin's
/// `rejected` run gets the server's challenge (`AUTHPLUG_CHALLENGE`); a
/// 403 that does not is the caller's answer, and nobody re-runs.
#[tokio::test]
async fn a_403_asking_for_scopes_reaches_the_plugin_and_is_healed() {
    let app = Router::new().route("/scoped", get(scoped)).route(
        "/forbidden",
        get(|| async { (StatusCode::FORBIDDEN, "no") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$AUTHPLUG_REASON\" \"${{AUTHPLUG_CHALLENGE-none}}\" >> '{0}/runs'\nstate=$(cat)\nnext=$(( ${{state:-0}} + 1 ))\nprintf '%s' $next >&3\necho tok-$next\n",
            dir.path().display()
        ),
    )
    .expect("write plugin");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let broker = Broker::new(PluginCommand::new(script), BrokerOptions::default());
    let client = reqwest::Client::new();

    let response = broker
        .send(client.get(format!("{url}/scoped")))
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        runs(dir.path()),
        [
            "initial|none",
            r#"rejected|Bearer realm="api", error="insufficient_scope", scope="api admin""#
        ]
    );
    let forbidden = broker
        .send(client.get(format!("{url}/forbidden")))
        .await
        .expect("send");
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(runs(dir.path()).len(), 2, "a plain 403 re-runs nothing");
}
