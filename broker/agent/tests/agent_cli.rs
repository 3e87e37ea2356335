//! `authplug token`, `reject` and friends against a real agent: one run for
//! many callers, the plugin's stderr live, closed pipes, errors in the
//! user's words, the cool-down, a resource server's 401 healed.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

mod support;
use support::*;

#[test]
fn token_and_reject_through_the_cli_with_one_run_for_many_callers() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", &format!("sleep 0.5\n{COUNTING}"));
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);

    // Twenty processes at once on an empty cache: one plugin run.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let socket = agent.socket.clone();
            std::thread::spawn(move || token_cli(&socket, &["--no-autostart"]))
        })
        .collect();
    for caller in callers {
        assert_eq!(stdout(&caller.join().expect("thread")), "tok-1\n");
    }
    assert_eq!(scratch.runs("main"), ["initial"]);

    // A storm of rejects of the same token: one re-run.
    reject_from_threads(&agent.socket, "tok-1\n", 10);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(scratch.runs("main"), ["initial", "rejected"]);

    // Late rejecters of the stale tok-1, after the re-run ended: the agent
    // compares before clearing, so tok-2 stays cached and nothing runs.
    reject_from_threads(&agent.socket, "tok-1\n", 10);
    let mut connection = agent.connect();
    connection.send(b"{\"v\":1,\"op\":\"reject\",\"token\":\"tok-1\"}\n");
    assert_eq!(connection.final_answer()["cleared"], false);
    let status = authplug()
        .args(["status", "--json", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("status");
    let profiles: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(profiles[0]["has_token"], true);
    assert_eq!(profiles[0]["rejected"], false);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(scratch.runs("main"), ["initial", "rejected"]);

    let empty = reject_cli(&agent.socket, "");
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no token on stdin"));
}

/// `authplug reject` of `token` from `count` threads at once; each must
/// succeed.
fn reject_from_threads(socket: &Path, token: &'static str, count: usize) {
    let rejecters: Vec<_> = (0..count)
        .map(|_| {
            let socket = socket.to_owned();
            std::thread::spawn(move || reject_cli(&socket, token))
        })
        .collect();
    for rejecter in rejecters {
        let output = rejecter.join().expect("thread");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_waiting_cli_shows_the_plugins_stderr_live() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "login",
        "echo 'To log in, visit https://login.example/device?code=WXYZ' >&2\nwhile [ ! -e \"$DIR/approved\" ]; do sleep 0.05; done\necho tok-login",
    );
    let agent = Agent::start(&scratch.socket(), &[("login", &plugin)]);
    let mut child = authplug()
        .args(["token", "--no-autostart", "--profile", "login", "--socket"])
        .arg(&agent.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("authplug token");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("stderr line");
    assert_eq!(
        line,
        "To log in, visit https://login.example/device?code=WXYZ\n"
    );
    // Shown while the login is still pending.
    assert!(child.try_wait().expect("try_wait").is_none());
    std::fs::write(scratch.path("approved"), "").expect("approve");
    let mut token = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut token)
        .expect("token");
    assert!(child.wait().expect("wait").success());
    assert_eq!(token, "tok-login\n");
}

/// `command` with its stdout or stderr a pipe nobody reads any more, as in
/// `authplug status | head -1` once `head` has exited.
fn with_closed(stream: &str, command: &mut Command) -> Output {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    command.stdin(Stdio::null());
    if stream == "stdout" {
        command.stdout(writer).stderr(Stdio::piped());
    } else {
        command.stderr(writer).stdout(Stdio::piped());
    }
    command.output().expect("run authplug")
}

#[test]
fn a_closed_stdout_or_stderr_is_no_reason_for_the_agent_commands_to_panic() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "main",
        "echo 'To log in, visit https://login.example/device' >&2\necho 'waiting...' >&2\necho tok-1",
    );
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    let cli = |args: &[&str]| {
        let mut command = authplug();
        command.args(args).arg("--socket").arg(&agent.socket);
        command
    };
    let panicked = |output: &Output| String::from_utf8_lossy(&output.stderr).contains("panicked");

    // The plugin's stderr lines go nowhere; the token still reaches stdout.
    let token = with_closed("stderr", &mut cli(&["token", "--no-autostart"]));
    assert_eq!(token.status.code(), Some(0), "{token:?}");
    assert_eq!(token.stdout, b"tok-1\n");
    // The token cannot be written: a failure, said on stderr.
    let token = with_closed("stdout", &mut cli(&["token", "--no-autostart"]));
    assert!(!panicked(&token), "{token:?}");
    assert_eq!(token.status.code(), Some(1), "{token:?}");
    assert!(String::from_utf8_lossy(&token.stderr).contains("cannot write the token"));

    for json in [false, true] {
        let mut status = cli(&["status"]);
        if json {
            status.arg("--json");
        }
        let status = with_closed("stdout", &mut status);
        assert!(!panicked(&status), "{status:?}");
        assert_eq!(status.status.code(), Some(0), "{status:?}");
    }

    // `stop` with no agent there says so on stderr.
    let nowhere = scratch.path("none/agent.sock");
    let mut stop = authplug();
    stop.arg("stop").arg("--socket").arg(&nowhere);
    let stop = with_closed("stderr", &mut stop);
    assert_eq!(stop.status.code(), Some(0), "{stop:?}");
}

#[test]
fn errors_reach_the_cli_with_the_plugins_message_and_profiles_are_named() {
    let scratch = Scratch::new();
    let failing = scratch.plugin("failing", "echo 'the IdP said: invalid_client' >&2\nexit 4");
    let good = scratch.plugin("good", "echo tok-good");
    let agent = Agent::start(&scratch.socket(), &[("failing", &failing), ("good", &good)]);

    let output = token_cli(
        &agent.socket,
        &["--profile", "failing", "--non-interactive"],
    );
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("exit code 4") && message.contains("invalid_client"),
        "{message}"
    );
    assert!(output.stdout.is_empty());

    let output = token_cli(&agent.socket, &[]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("no default profile") && message.contains("failing, good"),
        "{message}"
    );

    let output = token_cli(&agent.socket, &["--profile", "nope"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no profile named `nope`"));
    assert_eq!(
        stdout(&token_cli(&agent.socket, &["-p", "good"])),
        "tok-good\n"
    );

    let status = authplug()
        .args(["status", "--json", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("status");
    let profiles: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(profiles[0]["name"], "failing");
    assert_eq!(profiles[0]["has_token"], false);
    assert!(profiles[0]["last_error"]
        .as_str()
        .expect("error")
        .contains("invalid_client"));
    assert_eq!(profiles[1]["has_token"], true);
    let text = String::from_utf8(status.stdout).expect("utf-8");
    assert!(!text.contains("tok-good"), "status shows no token");
}

#[test]
fn after_a_failed_login_token_runs_the_plugin_quietly_and_says_how_to_force() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "login",
        r#"echo "$AUTHPLUG_INTERACTIVE" >> "$DIR/interactive"
if [ "$AUTHPLUG_INTERACTIVE" = 1 ]; then echo "login timed out" >&2; exit 1; fi
echo "a login is needed" >&2
exit 2"#,
    );
    let agent = Agent::start(&scratch.socket(), &[("login", &plugin)]);
    let interactive = || std::fs::read_to_string(scratch.path("interactive")).expect("log");

    let first = token_cli(&agent.socket, &[]);
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("login timed out"));

    let second = token_cli(&agent.socket, &[]);
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("a login is needed")
            && message.contains("cool-down")
            && message.contains("--force"),
        "{message}"
    );
    assert_eq!(
        interactive(),
        "1\n0\n",
        "the second run was not interactive"
    );

    let forced = token_cli(&agent.socket, &["--force"]);
    assert!(String::from_utf8_lossy(&forced.stderr).contains("login timed out"));
    assert_eq!(interactive(), "1\n0\n1\n");
}

/// The end-to-end case: a resource server that accepts only the newest
/// token, a client that uses `authplug token` and reports 401s with
/// `authplug reject`.
#[test]
fn a_resource_server_401_is_healed_through_token_and_reject() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("api", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("api", &plugin)]);
    let newest = Arc::new(Mutex::new(String::from("tok-1")));
    let server = ResourceServer::start(newest.clone());

    let call = |socket: &Path| -> (u16, String) {
        let token = stdout(&token_cli(socket, &[]));
        let token = token.trim_end().to_owned();
        (server.get(&token), token)
    };
    let (status, token) = call(&agent.socket);
    assert_eq!((status, token.as_str()), (200, "tok-1"));

    // The server revokes tok-1.
    *newest.lock().expect("newest") = "tok-2".into();
    let (status, stale) = call(&agent.socket);
    assert_eq!(status, 401);
    assert!(reject_cli(&agent.socket, &format!("{stale}\n"))
        .status
        .success());
    let (status, token) = call(&agent.socket);
    assert_eq!((status, token.as_str()), (200, "tok-2"));
    assert_eq!(scratch.runs("api"), ["initial", "rejected"]);
}

/// A small HTTP server on its own thread and runtime (these tests are
/// blocking, like the CLI).
struct ResourceServer {
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl ResourceServer {
    fn start(newest: Arc<Mutex<String>>) -> ResourceServer {
        use axum::http::{HeaderMap, StatusCode};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/me",
            axum::routing::get(move |headers: HeaderMap| {
                let newest = newest.clone();
                async move {
                    let expected = format!("Bearer {}", newest.lock().expect("newest").as_str());
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some(given) if given == expected => StatusCode::OK,
                        _ => StatusCode::UNAUTHORIZED,
                    }
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        ResourceServer { url, runtime }
    }

    fn get(&self, token: &str) -> u16 {
        let url = format!("{}/me", self.url);
        self.runtime.block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    }
}

/// A failed run through the agent: `authplug token` shows the plugin's
/// stderr as it comes, and the error once, without repeating those lines;
/// a run that asked for its new state to be kept hands it on to the next.
#[test]
fn a_failed_run_is_told_once_and_its_kept_state_reaches_the_next_run() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "p",
        &format!(
            r#"if [ ! -e "$DIR/failed" ]; then
  touch "$DIR/failed"
  cat >/dev/null
  printf 41 >&3
  echo "rotated the refresh token, but no token this time" >&2
  exit "$AUTHPLUG_KEEP_STATE_EXIT"
fi
{COUNTING}"#
        ),
    );
    let agent = Agent::start(&scratch.socket(), &[("p", &plugin)]);
    let failed = token_cli(&agent.socket, &["--profile", "p"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        stderr.matches("rotated the refresh token").count(),
        1,
        "the plugin's line once: {stderr}"
    );
    assert!(stderr.contains("updated state"), "{stderr}");
    assert!(!stderr.contains("last words"), "{stderr}");
    // The state it handed back, 41, is what the next run starts from.
    let next = token_cli(&agent.socket, &["--profile", "p"]);
    assert_eq!(stdout(&next).trim(), "tok-42");
}

#[test]
fn usage_mistakes_get_the_corrected_command_and_options_that_exist() {
    // `authplug run PLUGIN` without `--`.
    let output = authplug()
        .args(["run", "--timeout", "3", "./plugin.sh", "--its-flag"])
        .output()
        .expect("authplug runs");
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("hint: the plugin's command goes after `--`, so that its own options are not taken for authplug's: authplug run --timeout 3 -- ./plugin.sh --its-flag"),
        "{said}"
    );
    // `status` with no agent: no talk of a flag `status` does not have.
    let scratch = Scratch::new();
    let output = authplug()
        .args(["status", "--socket"])
        .arg(scratch.socket())
        .output()
        .expect("authplug runs");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("no agent is running on"), "{said}");
    assert!(!said.contains("--no-autostart"), "{said}");
    let output = token_cli(&scratch.socket(), &["--no-autostart"]);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("--no-autostart: start one with `authplug agent`, or leave the flag out"),
        "{said}"
    );
}

#[test]
fn token_claims_shows_what_a_jwt_says_and_never_the_token() {
    let scratch = Scratch::new();
    let jwt = scratch.plugin(
        "jwt",
        r#"cat > /dev/null
b64() { printf '%s' "$1" | base64 | tr -d '=\n' | tr '/+' '_-'; }
echo "$(b64 '{"alg":"none"}').$(b64 '{"sub":"alice","exp":4102444800,"groups":["dev"]}').sig""#,
    );
    let opaque = scratch.plugin("opaque", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("jwt", &jwt), ("opaque", &opaque)]);
    let output = token_cli(&agent.socket, &["--profile", "jwt", "--claims"]);
    let shown = stdout(&output);
    let claims: serde_json::Value = serde_json::from_str(&shown).expect("JSON claims");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["groups"][0], "dev");
    assert!(!shown.contains(".sig"), "the token itself: {shown}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("signature is not checked"), "{said}");

    let output = token_cli(&agent.socket, &["--profile", "opaque", "--claims"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("is not a JWT"), "{said}");
    assert!(!said.contains("tok-1"), "{said}");

    let output = token_cli(&agent.socket, &["--claims", "--header"]);
    assert!(!output.status.success() && output.stdout.is_empty());
}

/// `authplug run --reason` takes the protocol's reasons only: a typo would
/// reach the plugin as an unknown reason, which it treats like `refresh`.
#[test]
fn run_refuses_a_reason_that_is_not_one() {
    let typo = authplug()
        .args(["run", "--reason", "refrsh", "--", "true"])
        .output()
        .expect("authplug runs");
    assert_eq!(typo.status.code(), Some(2));
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(
        said.contains(
            "`refrsh` is not a reason: one of initial, refresh, rejected, expiring, logout"
        ),
        "{said}"
    );
    // Unless asked for: then it reaches the plugin as given.
    let any = authplug()
        .args(["run", "--reason", "refrsh", "--any-reason", "--"])
        .args(["sh", "-c", "echo \"$AUTHPLUG_REASON\""])
        .output()
        .expect("authplug runs");
    assert!(
        any.status.success(),
        "{}",
        String::from_utf8_lossy(&any.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&any.stdout), "refrsh\n");
}

/// What the new commands refuse before doing anything, each with what to
/// do instead, and nothing touched.
#[test]
fn bad_input_to_reject_proxy_setup_and_mcp_headers_is_refused_plainly() {
    let scratch = Scratch::new();
    let refused = |args: &[&str], expected: &str| {
        let output = authplug()
            .args(args)
            .env("HOME", scratch.path("home"))
            .env("XDG_RUNTIME_DIR", scratch.path("run"))
            .env_remove("AUTHPLUG_CONFIG")
            .env_remove("AUTHPLUG_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("authplug runs");
        assert!(!output.status.success(), "{args:?}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(expected), "{args:?}: {said}");
    };
    // A challenge with a control character never reaches a plugin.
    refused(
        &["reject", "--current", "--challenge", "Bearer\u{1}error=x"],
        "--challenge must be a WWW-Authenticate value",
    );
    // The token never crosses a network in the clear.
    refused(
        &["proxy", "--upstream", "http://example.com/mcp"],
        "the token would cross the network in the clear",
    );
    // A file that is not a socket is never replaced.
    let file = scratch.path("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let file_text = file.display().to_string();
    refused(
        &[
            "proxy",
            "--upstream",
            "http://127.0.0.1:9/",
            "--unix-socket",
            &file_text,
        ],
        "exists and is not a socket",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    // A client secret does not go into a config file's command line.
    refused(
        &[
            "setup",
            "--issuer",
            "https://id.example",
            "--client-id",
            "c",
            "--",
            "--client-secret=s",
        ],
        "would put the secret in the config file's command line",
    );
    // [mcp.servers] lists servers: another one gets no token; a key that
    // is no URL is named.
    let config = scratch.path("config.toml");
    let config_text = config.display().to_string();
    std::fs::write(
        &config,
        "[profiles.work]\ncommand = \"true\"\n\n[mcp.servers]\n\"https://mcp.example/\" = \"work\"\n",
    )
    .unwrap();
    refused(
        &[
            "mcp-headers",
            "--no-autostart",
            "--config",
            &config_text,
            "--server-url",
            "https://evil.example/mcp",
        ],
        "is under no entry of [mcp.servers]",
    );
    std::fs::write(&config, "[mcp.servers]\n\"not a url\" = \"work\"\n").unwrap();
    refused(
        &[
            "mcp-headers",
            "--no-autostart",
            "--config",
            &config_text,
            "--server-url",
            "https://mcp.example/",
        ],
        "\"not a url\" is not an http(s) URL",
    );
}
