//! The broker and the `authplug` agent with the example plugins (the Rust
//! one built on the protocol SDK, and the POSIX sh one), against a resource
//! server on 127.0.0.1 that accepts only each plugin's newest token.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authplug_broker::{Broker, BrokerOptions, PluginCommand};
use authplug_tests::{workspace, workspace_binary};
use axum::http::{HeaderMap, StatusCode};

fn rust_example() -> PathBuf {
    workspace_binary("authplug-example-plugin", "authplug-example-plugin")
}

/// Accepts `Authorization: Bearer T` only for a T in `accepted`.
struct ResourceServer {
    url: String,
    accepted: Arc<Mutex<HashSet<String>>>,
    runtime: tokio::runtime::Runtime,
}

impl ResourceServer {
    fn start() -> ResourceServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let accepted = Arc::new(Mutex::new(HashSet::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}/me", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/me",
            axum::routing::get({
                let accepted = accepted.clone();
                move |headers: HeaderMap| {
                    let accepted = accepted.clone();
                    async move {
                        let given = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "));
                        match given {
                            Some(token) if accepted.lock().expect("accepted").contains(token) => {
                                StatusCode::OK
                            }
                            _ => StatusCode::UNAUTHORIZED,
                        }
                    }
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        ResourceServer {
            url,
            accepted,
            runtime,
        }
    }

    /// The plugin's token source moves on from `old` to `new`.
    fn rotate(&self, token_file: &Path, old: &str, new: &str) {
        std::fs::write(token_file, format!("{new}\n")).expect("token file");
        let mut accepted = self.accepted.lock().expect("accepted");
        accepted.remove(old);
        accepted.insert(new.to_owned());
    }

    fn get(&self, token: &str) -> u16 {
        self.runtime.block_on(async {
            reqwest::Client::new()
                .get(&self.url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    }
}

struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn authplug(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(authplug_tests::authplug_binary());
    command
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("RUST_LOG");
    command
}

fn start_agent(socket: &Path, config: &Path) -> Agent {
    let config = config.to_str().expect("a UTF-8 temp path");
    let mut child = authplug(socket, &["agent", "--config", config])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "the agent did not start");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the agent exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Agent {
        child,
        socket: socket.to_owned(),
    }
}

fn succeeded(output: Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "authplug failed: {stderr}");
    (String::from_utf8(output.stdout).expect("utf-8"), stderr)
}

fn token(agent: &Agent, profile: &str) -> (String, String) {
    let (stdout, stderr) = succeeded(
        authplug(
            &agent.socket,
            &["token", "--no-autostart", "--profile", profile],
        )
        .output()
        .expect("authplug token"),
    );
    (stdout.trim_end().to_owned(), stderr)
}

fn reject(agent: &Agent, profile: &str, token: &str) {
    let mut child = authplug(&agent.socket, &["reject", "--profile", profile])
        .stdin(Stdio::piped())
        .spawn()
        .expect("authplug reject");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("write the token");
    assert!(child.wait().expect("reject").success());
}

#[test]
fn the_agent_serves_the_example_plugins_and_heals_a_401() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ResourceServer::start();
    let rust_tokens = dir.path().join("rust.token");
    let shell_tokens = dir.path().join("shell.token");
    server.rotate(&rust_tokens, "", "rust-token-1");
    server.rotate(&shell_tokens, "", "shell-token-1");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"default_profile = "rust"

[profiles.rust]
command = "'{}'"
env = {{ EXAMPLE_TOKEN_FILE = "{}" }}

[profiles.shell]
command = "'{}'"
timeout = 30
env = {{ EXAMPLE_TOKEN_FILE = "{}" }}
"#,
            rust_example().display(),
            rust_tokens.display(),
            workspace()
                .join("plugins/examples/shell/env-token.sh")
                .display(),
            shell_tokens.display(),
        ),
    )
    .expect("config");
    let agent = start_agent(&dir.path().join("run/agent.sock"), &config);

    let (rust_token, stderr) = token(&agent, "rust");
    assert_eq!(rust_token, "rust-token-1");
    assert!(stderr.contains("run 1 (reason: initial"), "{stderr}");
    assert_eq!(server.get(&rust_token), 200);
    let (shell_token, _) = token(&agent, "shell");
    assert_eq!(shell_token, "shell-token-1");
    assert_eq!(server.get(&shell_token), 200);

    // The server moves on; the agent still hands out the cached token...
    server.rotate(&rust_tokens, "rust-token-1", "rust-token-2");
    let (cached, stderr) = token(&agent, "rust");
    assert_eq!(cached, "rust-token-1");
    assert!(
        stderr.is_empty(),
        "no plugin run for a cached token: {stderr}"
    );
    assert_eq!(server.get(&cached), 401);
    // ...until the client reports the 401.
    reject(&agent, "rust", &cached);
    let (fresh, stderr) = token(&agent, "rust");
    assert_eq!(fresh, "rust-token-2");
    // The SDK plugin saw the reason and its own state from run 1.
    assert!(stderr.contains("run 2 (reason: rejected"), "{stderr}");
    assert_eq!(server.get(&fresh), 200);
    // The other profile was not touched.
    assert_eq!(token(&agent, "shell").0, "shell-token-1");

    let (status, _) = succeeded(
        authplug(&agent.socket, &["status", "--json"])
            .output()
            .expect("status"),
    );
    let profiles: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let rust = profiles
        .as_array()
        .expect("profiles")
        .iter()
        .find(|p| p["name"] == "rust")
        .expect("rust profile");
    assert_eq!(rust["runs"], 2);
    assert_eq!(rust["has_state"], true);
    assert!(!status.contains("rust-token"), "status holds no token");
}

#[tokio::test]
async fn the_broker_library_heals_a_401_with_the_sdk_plugin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "lib-token-1\n").expect("token file");
    let accepted = Arc::new(Mutex::new(String::from("lib-token-1")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/me", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/me",
        axum::routing::get({
            let accepted = accepted.clone();
            move |headers: HeaderMap| {
                let expected = format!("Bearer {}", accepted.lock().expect("accepted"));
                async move {
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some(given) if given == expected => StatusCode::OK,
                        _ => StatusCode::UNAUTHORIZED,
                    }
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut options = BrokerOptions::default();
    options.run.timeout = Duration::from_secs(30);
    options.run.env = vec![("EXAMPLE_TOKEN_FILE".into(), token_file.clone().into())];
    let broker = Broker::new(PluginCommand::new(rust_example()), options);
    let client = reqwest::Client::new();
    assert_eq!(
        broker.send(client.get(&url)).await.expect("send").status(),
        StatusCode::OK
    );

    std::fs::write(&token_file, "lib-token-2\n").expect("token file");
    *accepted.lock().expect("accepted") = "lib-token-2".into();
    assert_eq!(
        broker.send(client.get(&url)).await.expect("send").status(),
        StatusCode::OK
    );
    let status = broker.status();
    assert_eq!(status.runs, 2);
    assert_eq!(
        status.last_run.map(|run| run.reason),
        Some("rejected".to_owned())
    );
}
