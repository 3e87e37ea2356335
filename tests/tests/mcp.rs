//! MCP clients with authplug: a real MCP server (the MCP Python SDK's
//! FastMCP, accepting only the dev IdP's JWTs for its audience with the
//! scope `api`) and a real MCP client (the SDK's streamable-HTTP client),
//! with the agent and authplug-oidc behind them.
//!
//! - `authplug proxy`: the client talks to the proxy, which adds the
//!   agent's token; tools are listed and called; a progress stream arrives
//!   in pieces; the server refuses the token (revoked) and the next call
//!   still succeeds, healed by one rejected run (a refresh, no login);
//!   another local user cannot use the proxy; SIGTERM stops it.
//! - `authplug mcp-headers`: run as Claude Code runs its `headersHelper`
//!   (a shell command, the server's name and URL in the environment, 10 s),
//!   its headers used by the client; a login that cannot finish in time
//!   fails the hook with what to do, and goes on so the next call gets it.

mod oidc_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use authplug_tests::mcp::{McpClient, McpServer};
use oidc_support::{
    access_token_argv, agent_runs, agent_token, jwt_claims, start_agent, DevIdp, LoggedDriver,
};

/// The MCP server's audience.
const AUDIENCE: &str = "https://mcp.example";

/// authplug-oidc for the MCP server: an access token for its audience,
/// with the scope it requires.
fn mcp_argv(idp: &DevIdp, driver: &LoggedDriver) -> Vec<String> {
    let mut argv = access_token_argv(idp, driver, AUDIENCE);
    argv.extend(["--scopes".to_owned(), "openid,api".to_owned()]);
    argv
}

/// `authplug proxy` for the agent's profile `mcp`; its URL, once written.
struct ProxyProcess {
    child: tokio::process::Child,
    url: String,
}

async fn start_proxy(socket: &Path, upstream: &str, dir: &Path, listen: &[&str]) -> ProxyProcess {
    let url_file = dir.join("proxy.url");
    let child = tokio::process::Command::new(authplug_tests::authplug_binary())
        .args([
            "proxy",
            "--profile",
            "mcp",
            "--upstream",
            upstream,
            "--socket",
        ])
        .arg(socket)
        .arg("--url-file")
        .arg(&url_file)
        .args(listen)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("authplug proxy starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            break url.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the proxy wrote no URL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    ProxyProcess { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_through_the_proxy_streams_and_survives_a_revoked_token() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let (_agent, socket) = start_agent(dir.path(), "mcp", &mcp_argv(&idp, &driver)).await;
    let server = McpServer::start(&idp.issuer, AUDIENCE, "api");
    let mut proxy = start_proxy(&socket, &server.url, dir.path(), &[]).await;

    let mut client = McpClient::start(
        &proxy.url,
        &[],
        &[
            "list",
            "whoami",
            "count:5:0.3",
            "pause",
            "whoami",
            "blob:3000000",
        ],
    );
    let tools = client.next();
    assert_eq!(
        tools["tools"],
        serde_json::json!(["admin", "blob", "count", "whoami"]),
        "{tools}"
    );
    assert_eq!(client.next()["whoami"], "alice");
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    // Each progress report passes as it comes, not with the answer.
    let count = client.next();
    let first = count["progress_at"][0].as_f64().expect("progress came");
    let done = count["done_at"].as_f64().expect("an answer");
    assert!(first + 0.8 < done, "progress held back: {count}");

    // The server stops accepting the token mid-session: the proxy's next
    // request gets 401, rejects it, and sends the call again with a new
    // one (the agent refreshes: no login).
    assert_eq!(client.next()["paused"], true);
    let held = agent_token(&socket).await;
    server.revoke(&held).await;
    client.resume();
    assert_eq!(client.next()["whoami"], "alice");
    assert_eq!(agent_runs(&socket).await, (2, "rejected".to_owned()));
    assert_ne!(agent_token(&socket).await, held);
    // A large answer streams through.
    assert_eq!(client.next()["blob"], 3_000_000);
    assert!(client.finish(), "the MCP client succeeded");
    assert_eq!(driver.logins(), 1, "one login in all: {}", driver.log());

    // SIGTERM: it stops, cleanly.
    let pid = proxy.child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), proxy.child.wait())
        .await
        .expect("the proxy stops within its grace")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Step-up (RFC 6750 §3.1, the MCP authorization spec): a tool needs a
/// scope the first login did not ask for. The server answers 403
/// `insufficient_scope` naming the scopes it wants; the proxy rejects the
/// token with that challenge; `authplug token` passes it on to the agent;
/// authplug-oidc logs in once more asking for the union, and the call is
/// sent again and succeeds. Later calls need no login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_needs_another_scope_gets_one_login_asking_for_it() {
    let idp = DevIdp::start(r#"{"resourceScope":"api admin"}"#).expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let (_agent, socket) = start_agent(dir.path(), "mcp", &mcp_argv(&idp, &driver)).await;
    let server = McpServer::start(&idp.issuer, AUDIENCE, "api");
    let proxy = start_proxy(&socket, &server.url, dir.path(), &[]).await;

    // Paused after the first call, so that the token read below is the
    // first login's and not already the step-up's.
    let mut client = McpClient::start(&proxy.url, &[], &["whoami", "pause", "admin"]);
    assert_eq!(client.next()["whoami"], "alice");
    assert_eq!(client.next()["paused"], true);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let first = jwt_claims(&agent_token(&socket).await);
    assert_eq!(first["scope"], "api", "{first}");
    client.resume();
    let admin = client.next();
    assert_eq!(admin["admin"], "admin ok", "{admin}");
    assert!(client.finish());
    assert_eq!(driver.logins(), 2, "one new login: {}", driver.log());
    assert_eq!(agent_runs(&socket).await, (2, "rejected".to_owned()));
    let scopes = jwt_claims(&agent_token(&socket).await)["scope"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut scopes: Vec<&str> = scopes.split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["admin", "api"]);

    // From now on: no login, no run.
    let again = McpClient::start(&proxy.url, &[], &["admin"]);
    assert_eq!(again.next()["admin"], "admin ok");
    assert!(again.finish());
    assert_eq!(driver.logins(), 2, "{}", driver.log());
    assert_eq!(agent_runs(&socket).await.0, 2);
}

/// RFC 9728: the profile names only the MCP server's URL. The plugin
/// finds the server's Protected Resource Metadata (from its 401), takes its
/// authorization server (the dev IdP, which the metadata names with a
/// trailing `/` the issuer lacks), registers a client there (RFC 7591, no
/// client id given), logs in asking for the resource (RFC 8707) and the
/// scopes the metadata lists, and the MCP client's calls succeed. A later
/// rejected token is refreshed with the same registered client: no login,
/// no new registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_only_the_servers_url_to_a_working_token() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let server = McpServer::start(&idp.issuer, "self", "api");
    let argv: Vec<String> = [
        oidc_support::plugin_binary()
            .to_str()
            .expect("a UTF-8 path"),
        "--resource-url",
        &server.url,
        "--flow",
        "browser",
        "--browser-command",
        &driver.command,
        "--login-timeout",
        "20",
        "--http-timeout",
        "5",
    ]
    .map(str::to_owned)
    .to_vec();
    let (_agent, socket) = start_agent(dir.path(), "mcp", &argv).await;
    let proxy = start_proxy(&socket, &server.url, dir.path(), &[]).await;

    let client = McpClient::start(&proxy.url, &[], &["whoami"]);
    let first = client.next();
    assert_eq!(first["whoami"], "alice", "{first}");
    assert!(client.finish());
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let claims = jwt_claims(&agent_token(&socket).await);
    assert_eq!(claims["aud"], server.url.as_str(), "{claims}");
    assert_eq!(claims["scope"], "api", "{claims}");
    assert_ne!(claims["client_id"], "demo", "a registered client: {claims}");

    // The server refuses the token: a refresh with the registered client.
    server.revoke(&agent_token(&socket).await).await;
    let again = McpClient::start(&proxy.url, &[], &["whoami"]);
    let second = again.next();
    assert_eq!(second["whoami"], "alice", "{second}");
    assert!(again.finish());
    assert_eq!(agent_runs(&socket).await, (2, "rejected".to_owned()));
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let refreshed = jwt_claims(&agent_token(&socket).await);
    assert_eq!(refreshed["client_id"], claims["client_id"]);
}

/// `curl` as the user nobody (the tests run as root, as CI does).
fn curl_as_nobody(args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("setpriv runs curl")
}

fn curl(args: &[&str]) -> String {
    let output = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_user_cannot_use_the_proxy() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let driver = LoggedDriver::http(&[]);
    let (_agent, socket) = start_agent(dir.path(), "mcp", &mcp_argv(&idp, &driver)).await;
    let server = McpServer::start(&idp.issuer, AUDIENCE, "api");

    // TCP: the URL's secret is the key; its file is the user's only.
    let tcp = start_proxy(&socket, &server.url, dir.path(), &[]).await;
    let port_url = tcp
        .url
        .rsplit_once('/')
        .expect("a secret segment")
        .0
        .to_owned();
    let with_secret = curl(&[&tcp.url]);
    assert_ne!(with_secret, "403", "the user is served");
    assert_eq!(curl(&[&format!("{port_url}/")]), "403");
    assert_eq!(curl(&[&format!("{port_url}/not-the-secret")]), "403");
    assert_eq!(curl(&["-H", "Host: rebound.example", &tcp.url]), "421");
    // Dot segments would climb out of the upstream's base path.
    for climb in ["/../x", "/%2e%2E/x", "/./x"] {
        let url = format!("{}{climb}", tcp.url);
        assert_eq!(curl(&["--path-as-is", &url]), "400", "{climb}");
    }
    let nobody = curl_as_nobody(&[&format!("{port_url}/")]);
    assert_eq!(String::from_utf8_lossy(&nobody.stdout), "403");
    let read = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(dir.path().join("proxy.url"))
        .output()
        .unwrap();
    assert!(
        !read.status.success(),
        "nobody cannot read the proxy's URL file"
    );
    drop(tcp);

    // A unix socket: the user only.
    let path = dir.path().join("proxy.sock");
    let path_text = path.display().to_string();
    let _unix = start_proxy(
        &socket,
        &server.url,
        dir.path(),
        &["--unix-socket", &path_text],
    )
    .await;
    assert_ne!(
        curl(&["--unix-socket", &path_text, "http://localhost/"]),
        "000"
    );
    let nobody = curl_as_nobody(&["--unix-socket", &path_text, "http://localhost/"]);
    assert_eq!(
        String::from_utf8_lossy(&nobody.stdout),
        "000",
        "nobody cannot connect"
    );
    assert!(!nobody.status.success());
}

/// Runs `command` as Claude Code runs an MCP server's `headersHelper`: a
/// shell command, the server's name and URL in the environment, killed
/// after 10 s. Its stdout (the headers' JSON) and stderr.
fn headers_helper(command: &str, server_url: &str) -> (bool, String, String) {
    let output = std::process::Command::new("timeout")
        .args(["10", "sh", "-c", command])
        .env("CLAUDE_CODE_MCP_SERVER_NAME", "tools")
        .env("CLAUDE_CODE_MCP_SERVER_URL", server_url)
        .stdin(Stdio::null())
        .output()
        .expect("the hook runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn helper_command(socket: &Path, config: &Path, extra: &str) -> String {
    format!(
        "{} mcp-headers --socket {} --config {} {extra}",
        shell_words::quote(&authplug_tests::authplug_binary().display().to_string()),
        shell_words::quote(&socket.display().to_string()),
        shell_words::quote(&config.display().to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_headers_serves_the_hook_and_keeps_a_login_it_cannot_wait_for() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    // A login that takes longer than the hook may wait: the "user" logs in
    // after 3 s.
    let mut argv = mcp_argv(&idp, &driver);
    let browser = argv.iter().position(|a| a == "--browser-command").unwrap() + 1;
    argv[browser] = format!("sh -c 'sleep 3; exec \"$@\"' sh {}", argv[browser]);
    let (_agent, socket) = start_agent(dir.path(), "mcp", &argv).await;
    let server = McpServer::start(&idp.issuer, AUDIENCE, "api");
    let config: PathBuf = dir.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[mcp.servers]\n{:?} = \"mcp\"\n", server.url));
    std::fs::write(&config, text).unwrap();

    // The first call needs a login that takes 3 s; the hook waits 1.
    let (ok, stdout, stderr) =
        headers_helper(&helper_command(&socket, &config, "--wait 1"), &server.url);
    assert!(!ok && stdout.is_empty(), "{stdout}{stderr}");
    assert!(stderr.contains("a login is under way"), "{stderr}");
    assert!(stderr.contains("authplug token --profile mcp"), "{stderr}");
    // A second call meanwhile joins that login (the profile chosen by the
    // server's URL, from [mcp.servers]).
    let (ok, stdout, stderr) = headers_helper(&helper_command(&socket, &config, ""), &server.url);
    assert!(ok, "{stderr}");
    assert_eq!(driver.logins(), 1, "one login: {}", driver.log());
    let headers: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON object");
    let authorization = headers["Authorization"]
        .as_str()
        .expect("an Authorization header");
    assert!(authorization.starts_with("Bearer "), "{authorization}");
    assert_eq!(headers.as_object().unwrap().len(), 1);

    // The client with the hook's headers.
    let client = McpClient::start(
        &server.url,
        &[format!("Authorization: {authorization}")],
        &["whoami"],
    );
    assert_eq!(client.next()["whoami"], "alice");
    assert!(client.finish());

    // Later calls: from the agent, no run.
    let (runs, _) = agent_runs(&socket).await;
    let (ok, again, _) = headers_helper(&helper_command(&socket, &config, ""), &server.url);
    assert!(ok);
    assert_eq!(again, stdout);
    assert_eq!(agent_runs(&socket).await.0, runs);
}
