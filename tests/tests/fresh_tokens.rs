//! Tokens that never go stale, with opaque access tokens: the dev IdP
//! (npm oidc-provider) issues them without `--resource`, living a few
//! seconds; authplug-oidc reports their lifetime (`expires_in`) on fd 4
//! (PROTOCOL.md rule 10); the agent refreshes a used one in the background
//! before it expires. An API checks each token at the IdP's userinfo
//! endpoint (the IdP's own word on an opaque token) and counts its 401s.
//! The real kubectl (`kubectl proxy`, one long-lived client-go that goes by
//! `expirationTimestamp`), `authplug token --header`, `authplug exec` and
//! the real git's `credential fill` all get a good token past the first
//! one's expiry with no 401 and no reject.

mod oidc_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authplug_tests::resource_server::{bearer, serve_on_loopback, unauthorized};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oidc_support::{
    access_token_argv, agent_runs, opaque_access_token_argv, start_agent, unix_now, DevIdp,
    LoggedDriver,
};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

/// How long the IdP's access tokens live, in seconds.
const LIFETIME: u64 = 8;

/// An API that takes a bearer token if the IdP's userinfo endpoint does.
struct Api {
    userinfo: String,
    http: reqwest::Client,
    refused: AtomicUsize,
}

async fn check_at_userinfo(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        api.refused.fetch_add(1, Ordering::SeqCst);
        return unauthorized("no bearer token");
    };
    let answer = api.http.get(&api.userinfo).bearer_auth(token).send().await;
    match answer {
        Ok(answer) if answer.status().is_success() => Json(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
        }))
        .into_response(),
        _ => {
            api.refused.fetch_add(1, Ordering::SeqCst);
            unauthorized("the IdP does not know this token (expired or revoked)")
        }
    }
}

/// The API on plain HTTP (for curl and scripts) and behind TLS (kubectl),
/// both on 127.0.0.1.
struct Served {
    api: Arc<Api>,
    http_url: String,
    https_url: String,
    ca_file: std::path::PathBuf,
}

async fn serve_api(idp: &DevIdp, dir: &Path) -> Served {
    let discovery = reqwest::get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .await
        .expect("discovery")
        .bytes()
        .await
        .expect("a body");
    let discovery: serde_json::Value = serde_json::from_slice(&discovery).expect("JSON");
    let checker = Arc::new(Api {
        userinfo: discovery["userinfo_endpoint"]
            .as_str()
            .expect("a userinfo endpoint")
            .to_owned(),
        http: reqwest::Client::new(),
        refused: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/api", get(check_at_userinfo))
        .with_state(checker.clone());
    let http_url = serve_on_loopback(app).await.expect("the API listens");
    let backend: SocketAddr = http_url
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let (https_url, ca_file) = oidc_support::tls::https_front(backend, dir).await;
    Served {
        api: checker,
        http_url,
        https_url,
        ca_file,
    }
}

fn authplug(socket: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(authplug_tests::authplug_binary());
    command
        .env("AUTHPLUG_SOCKET", socket)
        .env_remove("AUTHPLUG_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    command
}

async fn output_of(command: &mut tokio::process::Command) -> String {
    let output = command.output().await.expect("it runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

async fn status(socket: &Path) -> serde_json::Value {
    let text = output_of(authplug(socket).args(["status", "--json"])).await;
    serde_json::from_str::<serde_json::Value>(&text).expect("JSON")[0].clone()
}

/// Until the clock has passed `expires_at` (Unix seconds).
async fn wait_past(expires_at: u64) {
    while (unix_now() as u64) <= expires_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_status(http: &reqwest::Client, url: &str) -> u16 {
    http.get(url)
        .send()
        .await
        .expect("a response")
        .status()
        .as_u16()
}

/// `kubectl proxy` with `authplug kubectl` as its exec credential plugin;
/// the proxy's URL once it listens. Killed when dropped.
async fn kubectl_proxy(
    dir: &Path,
    served: &Served,
    socket: &Path,
) -> (tokio::process::Child, String) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": served.https_url, "certificate-authority": served.ca_file}}],
        "users": [{"name": "authplug", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": authplug_tests::authplug_binary(),
            "args": ["kubectl", "--profile", "api", "--no-autostart", "--socket", socket],
            "interactiveMode": "IfAvailable",
        }}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "authplug"}}],
        "current-context": "test",
    });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, config.to_string()).unwrap();
    let mut proxy = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("kube-cache"))
        .args(["proxy", "--port=0", "--address=127.0.0.1"])
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl proxy starts");
    let mut lines = tokio::io::BufReader::new(proxy.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("kubectl proxy says where it listens")
        .expect("a line")
        .expect("a line");
    let address = line
        .rsplit(' ')
        .next()
        .expect("Starting to serve on 127.0.0.1:PORT");
    (proxy, format!("http://{address}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_renewed_before_they_expire_for_kubectl_curl_exec_and_git() {
    let idp = DevIdp::start(&format!(r#"{{"ttl":{{"accessToken":{LIFETIME}}}}}"#))
        .expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    // Each run's reason, logged by a wrapper before the plugin runs.
    let reasons = dir.path().join("reasons");
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        r#"echo "$AUTHPLUG_REASON" >> "$0"; exec "$@""#.into(),
        reasons.display().to_string(),
    ];
    argv.extend(opaque_access_token_argv(&idp, &driver));
    let (_agent, socket) = start_agent(dir.path(), "api", &argv).await;
    let served = serve_api(&idp, dir.path()).await;
    let http = reqwest::Client::new();

    // One login. The token is opaque, and yet the agent knows its expiry.
    let token = output_of(authplug(&socket).args(["token", "--no-autostart"])).await;
    assert_eq!(token.matches('.').count(), 0, "an opaque token: {token}");
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let first_expiry = status(&socket).await["expires_at"]
        .as_u64()
        .expect("the reported expiry");
    let lifetime = first_expiry.saturating_sub(unix_now() as u64);
    assert!(lifetime <= LIFETIME, "{lifetime}");

    // kubectl proxy: one client-go for the whole test. It gets the token
    // with an expirationTimestamp, and asks again once that has passed.
    let (_proxy, proxy_url) = kubectl_proxy(dir.path(), &served, &socket).await;
    let through_proxy = format!("{proxy_url}/api");
    assert_eq!(get_status(&http, &through_proxy).await, 200);

    // Past the first token's expiry: the agent renewed it in the
    // background (reason `expiring`), kubectl took the new one.
    wait_past(first_expiry).await;
    assert_eq!(get_status(&http, &through_proxy).await, 200);
    let second = status(&socket).await;
    assert!(
        second["expires_at"].as_u64() > Some(first_expiry),
        "{second}"
    );
    assert_eq!(second["last_run"]["reason"], "expiring", "{second}");
    assert_eq!(second["last_run"]["interactive"], false, "{second}");

    // curl's way (`authplug token --header | curl -H @-`), then, past that
    // token's expiry, a script under `authplug exec`.
    let api_url = format!("{}/api", served.http_url);
    let code = output_of(
        tokio::process::Command::new("sh")
            .args([
                "-c",
                r#""$0" token --header | curl -s -o /dev/null -w '%{http_code}' -H @- "$1""#,
            ])
            .arg(authplug_tests::authplug_binary())
            .arg(&api_url)
            .env("AUTHPLUG_SOCKET", &socket),
    )
    .await;
    assert_eq!(code, "200");
    wait_past(second["expires_at"].as_u64().expect("an expiry")).await;
    let code = output_of(authplug(&socket).args([
        "exec",
        "--",
        "sh",
        "-c",
        r#"curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AUTHPLUG_TOKEN" "$0""#,
        &api_url,
    ]))
    .await;
    assert_eq!(code, "200");
    assert_eq!(get_status(&http, &through_proxy).await, 200);

    // git's own `credential fill` through the helper: the expiry it
    // answers is the agent's.
    let git = authplug_tests::git_client::Git::new(dir.path(), &socket, "api");
    let filled = git.run_with_input(
        dir.path(),
        &["credential", "fill"],
        &[("GIT_TERMINAL_PROMPT", "0")],
        b"protocol=https\nhost=git.example\n\n",
    );
    let filled_text = String::from_utf8_lossy(&filled.stdout).into_owned();
    assert!(
        filled.status.success(),
        "{filled_text}{}",
        String::from_utf8_lossy(&filled.stderr)
    );
    let now_expiry = status(&socket).await["expires_at"]
        .as_u64()
        .expect("an expiry");
    assert!(
        filled_text.contains(&format!("password_expiry_utc={now_expiry}\n")),
        "{filled_text}"
    );

    // Not one 401 at the API, not one reject, not one caller's own
    // refresh, not one more login: a login, then background runs.
    assert_eq!(served.api.refused.load(Ordering::SeqCst), 0);
    let reasons = std::fs::read_to_string(&reasons).unwrap();
    let reasons: Vec<&str> = reasons.lines().collect();
    assert_eq!(reasons[0], "initial", "{reasons:?}");
    assert!(
        reasons.len() >= 3 && reasons[1..].iter().all(|r| *r == "expiring"),
        "{reasons:?}"
    );
    assert_eq!(agent_runs(&socket).await.0, reasons.len() as u64);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
}

/// authplug-oidc for JWT access tokens (`--resource`), behind a wrapper
/// that logs each run's reason and `AUTHPLUG_INTERACTIVE` to `log` and
/// says `plugin running` on stderr, which the agent streams to every
/// caller that waits for the run.
fn logged_jwt_argv(idp: &DevIdp, driver: &LoggedDriver, log: &Path) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        r#"echo "$AUTHPLUG_REASON $AUTHPLUG_INTERACTIVE" >> "$0"; echo "plugin running" >&2; exec "$@""#
            .into(),
        log.display().to_string(),
    ];
    argv.extend(access_token_argv(idp, driver, "https://api.example"));
    argv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_across_a_jwts_refresh_point_never_wait_and_one_background_run_serves_them() {
    let idp = DevIdp::start(&format!(r#"{{"ttl":{{"accessToken":{LIFETIME}}}}}"#))
        .expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let log = dir.path().join("runs");
    let (_agent, socket) =
        start_agent(dir.path(), "api", &logged_jwt_argv(&idp, &driver, &log)).await;
    let login = output_of(authplug(&socket).args(["token", "--no-autostart"])).await;
    let exp = oidc_support::jwt_claims(login.trim_end())["exp"]
        .as_u64()
        .expect("a JWT with an exp");

    // Two callers ask back to back until past the first token's expiry.
    let mut callers = Vec::new();
    for _ in 0..2 {
        let socket = socket.clone();
        callers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while (unix_now() as u64) <= exp {
                let output = authplug(&socket)
                    .args(["token", "--no-autostart", "--non-interactive"])
                    .output()
                    .await
                    .expect("authplug token");
                let said = String::from_utf8_lossy(&output.stderr).into_owned();
                assert!(output.status.success(), "{said}");
                assert!(!said.contains("plugin running"), "a caller waited: {said}");
                got.push(String::from_utf8(output.stdout).unwrap());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got
        }));
    }
    let mut seen = Vec::new();
    for caller in callers {
        seen.push(caller.await.expect("caller"));
    }
    // One background run, not interactive; each caller had the login's
    // token, then the new one, and never the old one again.
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs, "initial 1\nexpiring 0\n");
    for got in &seen {
        let switch = got.iter().position(|t| *t != login).expect("a new token");
        assert!(got[switch..].iter().all(|t| *t == got[switch]), "{got:?}");
        let new_exp = oidc_support::jwt_claims(got[switch].trim_end())["exp"].as_u64();
        assert!(new_exp > Some(exp));
    }
    assert_eq!(driver.logins(), 1, "{}", driver.log());
}
