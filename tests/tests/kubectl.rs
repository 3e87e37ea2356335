//! The real kubectl with `authplug kubectl` as its exec credential plugin
//! (client-go's `users[].user.exec`), against a small HTTPS API that checks
//! the bearer token as a Kubernetes API server's OIDC authenticator would
//! (signature against the dev IdP's keys, issuer, audience, expiry), with
//! the `authplug` agent and `authplug-oidc` behind it. kubectl runs with a
//! terminal (under `script`) when a login may happen, as a user at a
//! shell, and without one to show that then no login starts.

mod oidc_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use authplug_tests::resource_server::{bearer, serve_on_loopback, unauthorized, ResourceServer};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oidc_support::{
    access_token_argv, agent_runs, agent_token, jwt_claims, start_agent, unix_now, DevIdp,
    LoggedDriver,
};
use serde_json::json;

/// The API's audience: what its OIDC authenticator expects in `aud`.
const AUDIENCE: &str = "https://kube.example";

/// `GET /api`, as a Kubernetes API server answers it, for a good token.
async fn api(State(server): State<Arc<ResourceServer>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return unauthorized("no bearer token");
    };
    match server.check(token) {
        Ok(_) => Json(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
        }))
        .into_response(),
        Err(why) => unauthorized(&why),
    }
}

/// The API behind TLS on 127.0.0.1, with a certificate made here.
struct KubeApi {
    server: Arc<ResourceServer>,
    url: String,
    ca_file: PathBuf,
}

async fn kube_api(idp: &DevIdp, dir: &Path) -> KubeApi {
    let server = ResourceServer::new(&idp.issuer, AUDIENCE)
        .await
        .expect("the API gets the IdP's keys");
    let app = Router::new()
        .route("/api", get(api))
        .with_state(server.clone());
    let backend: SocketAddr = serve_on_loopback(app)
        .await
        .expect("the API listens")
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let (url, ca_file) = oidc_support::tls::https_front(backend, dir).await;
    KubeApi {
        server,
        url,
        ca_file,
    }
}

/// A kubeconfig with two users running `authplug kubectl`, one per
/// ExecCredential version; `authplug` (v1) is the current one.
fn kubeconfig(dir: &Path, api: &KubeApi, socket: &Path) -> PathBuf {
    let exec = |version: &str| {
        let mut exec = json!({
            "apiVersion": format!("client.authentication.k8s.io/{version}"),
            "command": authplug_tests::authplug_binary(),
            "args": ["kubectl", "--profile", "kube", "--no-autostart", "--socket", socket],
        });
        if version == "v1" {
            exec["interactiveMode"] = json!("IfAvailable");
        }
        exec
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": api.url, "certificate-authority": api.ca_file}}],
        "users": [
            {"name": "authplug", "user": {"exec": exec("v1")}},
            {"name": "authplug-beta", "user": {"exec": exec("v1beta1")}},
        ],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "authplug"}}],
        "current-context": "test",
    });
    let path = dir.join("kubeconfig");
    // JSON is YAML.
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

struct Kubectl {
    ok: bool,
    output: String,
}

/// `kubectl get --raw /api` (plus `extra`), with a terminal (`script`
/// gives it one, as a user's shell would) or without (stdin from
/// /dev/null, output to pipes).
async fn kubectl(kubeconfig: &Path, dir: &Path, extra: &[&str], terminal: bool) -> Kubectl {
    let mut argv: Vec<String> = vec![
        "kubectl".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--cache-dir".into(),
        dir.join("kube-cache").display().to_string(),
    ];
    argv.extend(extra.iter().map(|a| a.to_string()));
    argv.extend(["get", "--raw", "/api"].map(String::from));
    let mut command = if terminal {
        let mut command = tokio::process::Command::new("script");
        command.args(["-qec", &shell_words::join(&argv), "/dev/null"]);
        command
    } else {
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
    };
    let output = command
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("kubectl runs");
    Kubectl {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_in_once_then_is_served_by_the_agent_heals_a_401_and_refreshes() {
    // Access tokens live 8 s: long enough for two kubectl runs, short
    // enough to wait out.
    let idp = DevIdp::start(r#"{"ttl":{"accessToken":8}}"#).expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let (_agent, socket) = start_agent(
        dir.path(),
        "kube",
        &access_token_argv(&idp, &driver, AUDIENCE),
    )
    .await;
    let api = kube_api(&idp, dir.path()).await;
    let config = kubeconfig(dir.path(), &api, &socket);

    // No terminal: client-go says `interactive: false`, so no login.
    let quiet = kubectl(&config, dir.path(), &[], false).await;
    assert!(!quiet.ok, "{}", quiet.output);
    assert!(
        quiet.output.contains("a login is needed"),
        "{}",
        quiet.output
    );
    assert_eq!(driver.logins(), 0, "{}", driver.log());

    // At a terminal: the first call logs in.
    let first = kubectl(&config, dir.path(), &[], true).await;
    assert!(
        first.ok && first.output.contains("APIVersions"),
        "{}",
        first.output
    );
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let (after_login, _) = agent_runs(&socket).await;

    // The second (v1beta1 this time, no terminal): from the agent, no run.
    let second = kubectl(&config, dir.path(), &["--user", "authplug-beta"], false).await;
    assert!(
        second.ok && second.output.contains("APIVersions"),
        "{}",
        second.output
    );
    assert_eq!(
        agent_runs(&socket).await.0,
        after_login,
        "served from the agent"
    );

    // The API refuses the token (revoked): that kubectl gets 401, client-go
    // runs the plugin again in the same process, which the agent takes as
    // a rejection: a refresh, no login. The next kubectl works.
    let held = agent_token(&socket).await;
    api.server.revoke(&held);
    let refused = kubectl(&config, dir.path(), &[], false).await;
    assert!(!refused.ok, "{}", refused.output);
    assert!(
        refused
            .output
            .contains("You must be logged in to the server"),
        "{}",
        refused.output
    );
    assert_eq!(
        agent_runs(&socket).await,
        (after_login + 1, "rejected".to_owned())
    );
    let healed = kubectl(&config, dir.path(), &[], false).await;
    assert!(healed.ok, "{}", healed.output);
    assert_ne!(agent_token(&socket).await, held);

    // Used since it was obtained, the token is refreshed by the agent on
    // its own before it expires (refresh ahead, reason `expiring`), without
    // a login; kubectl past the old token's expiry gets the new one.
    let held = agent_token(&socket).await;
    let expires = jwt_claims(&held)["exp"].as_i64().expect("an exp");
    while unix_now() <= expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later = kubectl(&config, dir.path(), &[], false).await;
    assert!(later.ok, "{}", later.output);
    assert_eq!(agent_runs(&socket).await.1, "expiring");
    assert_ne!(agent_token(&socket).await, held);
    assert_eq!(driver.logins(), 1, "one login in all: {}", driver.log());
}

/// `authplug setup` on a fresh machine: a fresh HOME, no config file, no
/// agent. It logs in (in the agent it starts), shows the claims and never
/// the token, writes the profile, and prints a kubeconfig stanza that the
/// real kubectl then uses as printed, from the same login. A setup that
/// would replace the profile, or whose login fails, leaves the config file
/// exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_goes_from_no_config_to_a_working_kubectl_with_the_printed_stanza() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let api = kube_api(&idp, dir.path()).await;
    let driver = LoggedDriver::http(&[]);
    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let _stop = authplug_tests::StopAgent(runtime.join("authplug/agent.sock"));
    // authplug-oidc is found beside authplug.
    let _ = oidc_support::plugin_binary();
    let authplug = authplug_tests::authplug_binary();
    let bin_dir = authplug.parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let setup = |issuer: &str, extra: &[&str]| {
        let mut command = std::process::Command::new(&authplug);
        command
            .args(["setup", "--issuer", issuer, "--client-id", "demo"])
            .args(extra)
            .args([
                "--",
                "--flow",
                "browser",
                "--browser-command",
                &driver.command,
                "--token",
                "access",
                "--resource",
                AUDIENCE,
                "--login-timeout",
                "20",
                "--http-timeout",
                "5",
            ])
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("PATH", &path)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AUTHPLUG_CONFIG")
            .env_remove("AUTHPLUG_SOCKET")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("authplug setup runs")
    };

    let first = setup(&idp.issuer, &["--profile", "work"]);
    let printed = String::from_utf8_lossy(&first.stdout).into_owned();
    let said = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first.status.success(), "{printed}{said}");
    assert!(printed.contains("\"sub\": \"alice\""), "{printed}");
    let config_path = home.join(".config/authplug/config.toml");
    let config = std::fs::read_to_string(&config_path).expect("the config file");
    assert!(config.contains("[profiles.work]"), "{config}");
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let socket = runtime.join("authplug/agent.sock");
    let token = agent_token(&socket).await;
    assert!(!printed.contains(&token) && !said.contains(&token));
    assert_eq!(driver.logins(), 1, "the agent kept the setup's login");

    // kubectl with the stanza as printed.
    let users: String = printed
        .lines()
        .skip_while(|line| *line != "users:")
        .take_while(|line| !line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        users.contains(r#"args: [kubectl, --profile, "work"]"#),
        "{printed}"
    );
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\n\
             contexts:\n- name: test\n  context: {{cluster: test, user: work}}\ncurrent-context: test\n{users}",
            api.url,
            api.ca_file.display()
        ),
    )
    .unwrap();
    let kubectl = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("kube-cache"))
        .args(["get", "--raw", "/api"])
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("PATH", &path)
        .env_remove("KUBECONFIG")
        .env_remove("AUTHPLUG_SOCKET")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("kubectl runs");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&kubectl.stdout),
        String::from_utf8_lossy(&kubectl.stderr)
    );
    assert!(
        kubectl.status.success() && out.contains("APIVersions"),
        "{out}"
    );
    assert_eq!(driver.logins(), 1, "one login in all: {}", driver.log());

    // The same profile again: refused before any login, the file as it was.
    let again = setup(&idp.issuer, &["--profile", "work"]);
    assert!(!again.status.success());
    let again_said = String::from_utf8_lossy(&again.stderr);
    assert!(
        again_said.contains("already has a profile `work`"),
        "{again_said}"
    );
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), config);

    // A login that fails (nothing listens at that issuer): the file is put
    // back exactly as it was.
    let failed = setup("http://127.0.0.1:9", &["--profile", "other"]);
    assert!(!failed.status.success());
    let failed_said = String::from_utf8_lossy(&failed.stderr);
    assert!(failed_said.contains("is as it was"), "{failed_said}");
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), config);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
}
