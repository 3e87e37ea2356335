//! authplug-oidc's browser-login rules against the real dev IdP
//! (scripts/dev-idp, npm oidc-provider), with its HTTP login driver
//! (login-http.mjs) as the browser command: forged and stray callbacks are
//! ignored, a refusal is a clear error, a login that never comes times out,
//! and without AUTHPLUG_INTERACTIVE nothing is ever opened. Each failure
//! exits 1 and writes nothing on stdout or fd 3.

mod oidc_support;

use std::process::Child;
use std::sync::{Arc, Mutex};

use authplug_protocol::State;
use oidc_support::{
    dev_args, jwt_claims, login_http_command, open_printed_url, state_json, token_text, DevIdp,
    ForbiddenBrowser, LoggedDriver, Run,
};

fn start() -> DevIdp {
    DevIdp::start("{}").expect("the dev IdP starts")
}

/// A state a previous run left (another issuer's, so the plugin ignores
/// it): a failing run must not replace it.
fn previous_state() -> State {
    State::new(br#"{"version":1,"issuer":"http://127.0.0.1:1","client_id":"x"}"#.to_vec())
}

/// A "browser" that first sends forged callbacks (no or a wrong state) and
/// a request for another path to the plugin's listener, checks each is
/// refused, then runs the real login driver (all but the last argument).
const FORGED_FIRST: &str = r#"
import sys, urllib.parse, urllib.request, urllib.error, subprocess
url = sys.argv[-1]
redirect = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["redirect_uri"][0]
for query in ("state=forged&code=stolen", "code=stolen", "error=access_denied&state=forged"):
    try:
        urllib.request.urlopen(redirect + "?" + query)
        sys.exit("a forged callback was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.code
        assert b"does not belong to the login in progress" in e.read()
try:
    urllib.request.urlopen(redirect.rsplit("/", 1)[0] + "/other")
    sys.exit("a path other than the redirect path was answered")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code
subprocess.run(sys.argv[1:], check=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stray_callbacks_are_ignored_and_the_login_completes() {
    let idp = start();
    // DEV_IDP_STRAY=1: the driver sends the IdP's real callback with a
    // wrong state first, then the right one.
    let driver = LoggedDriver::http(&[("DEV_IDP_STRAY", "1")]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("forged.py");
    std::fs::write(&script, FORGED_FIRST).unwrap();
    let browser = format!("python3 {} {}", script.display(), driver.command);
    let output = Run::new(&dev_args(&idp.issuer, &browser))
        .go()
        .await
        .expect("the login completes after the forged callbacks");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    let log = driver.log();
    assert!(log.contains("stray callback with a wrong state"), "{log}");
    assert_eq!(driver.logins(), 1, "{log}");
    assert!(
        !output.stderr_tail.contains("exited with"),
        "the forged-callback checks failed: {}",
        output.stderr_tail
    );
}

async fn denied(driver_env: &[(&str, &str)], description: &str) {
    let idp = start();
    let driver = LoggedDriver::http(driver_env);
    let refusal = Run::new(&dev_args(&idp.issuer, &driver.command))
        .state(&previous_state())
        .go_refused()
        .await;
    let message = refusal.assert_clean("the provider refused the login: access_denied");
    assert!(message.contains(description), "{message}");
    assert_eq!(driver.logins(), 1, "{}", driver.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_consent_is_a_clear_error() {
    denied(&[("DEV_IDP_DENY", "1")], "the user denied consent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_at_sign_in_is_a_clear_error() {
    denied(&[("DEV_IDP_USER", "deny")], "the user refused to sign in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout() {
    let idp = start();
    let mut args = dev_args(&idp.issuer, "true");
    *args.last_mut().unwrap() = "2".into(); // --login-timeout
    let refusal = Run::new(&args).state(&previous_state()).go_refused().await;
    let message = refusal.assert_clean("not completed within 2 seconds");
    assert!(message.contains("--login-timeout"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_interactive_never_opens_a_browser() {
    let idp = start();
    let forbidden = ForbiddenBrowser::new();
    for flow in ["browser", "auto", "device"] {
        let mut args = dev_args(&idp.issuer, &forbidden.command);
        args[5] = flow.into();
        let refusal = Run::new(&args)
            .state(&previous_state())
            .interactive(false)
            .go_refused()
            .await;
        let message = refusal.assert_clean("AUTHPLUG_INTERACTIVE=0");
        assert!(!message.contains("visit"), "{flow}: {message}");
    }
    forbidden.assert_unused();
}

/// `--no-browser` with `--flow auto` (and a provider that has the device
/// flow): the browser flow (paste-back), its URL printed and nothing
/// opened; the browser reaching the loopback redirect ends it as usual. The test
/// plays the user, opening the printed URL with the HTTP login driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_browser_with_auto_prints_the_login_url_and_opens_nothing() {
    let idp = start();
    let forbidden = ForbiddenBrowser::new();
    let mut args = dev_args(&idp.issuer, &forbidden.command);
    args[5] = "auto".into();
    args.push("--no-browser".into());
    let users: Arc<Mutex<Vec<Child>>> = Arc::default();
    let started = Arc::clone(&users);
    let output = Run::new(&args)
        .on_stderr(move |line| {
            // The address on a line of its own, indented.
            let Some(url) = line.strip_prefix("  http") else {
                return;
            };
            let url = format!("http{url}");
            let child = open_printed_url(&login_http_command(&[]), &url);
            started.lock().unwrap().push(child);
        })
        .go()
        .await
        .expect("a browser login through the printed URL");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    let mut users = users.lock().unwrap();
    assert_eq!(
        users.len(),
        1,
        "one login URL printed: {}",
        output.stderr_tail
    );
    assert!(users[0].wait().unwrap().success());
    assert!(
        !output.stderr_tail.contains("device"),
        "{}",
        output.stderr_tail
    );
    forbidden.assert_unused();
}

/// A "browser" that records how it was started (its session and its
/// parent's, what each of its descriptors points at) before it opens
/// anything, then logs in with the HTTP driver. Arguments: the record
/// file, the driver command, the URL. (Python, not sh: a shell redirecting
/// its own output would change the very descriptors it lists.)
const LAUNCH_RECORDER: &str = r#"
import json, os, sys
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except FileNotFoundError:
        pass  # the descriptor listdir itself used, closed by now
parent = os.getppid()
with open("/proc/%d/comm" % parent) as comm:
    parent_name = comm.read().strip()
record = {"pid": os.getpid(), "sid": os.getsid(0), "parent": parent_name,
          "parent_sid": os.getsid(parent), "fds": fds}
with open(sys.argv[1], "w") as out:
    json.dump(record, out)
os.execvp(sys.argv[2], sys.argv[2:])
"#;

/// The browser runs in its own session (so it outlives the plugin's
/// process group and takes no signals meant for it), with stdin, stdout
/// and stderr on /dev/null and neither fd 3 nor any other pipe or socket
/// of the plugin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_runs_in_its_own_session_with_stdio_on_dev_null_and_no_fd_3() {
    let idp = start();
    let driver = LoggedDriver::http(&[]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("launch.py");
    std::fs::write(&script, LAUNCH_RECORDER).unwrap();
    let record = dir.path().join("launch.json");
    let browser = format!(
        "python3 {} {} {}",
        script.display(),
        record.display(),
        driver.command
    );
    let output = Run::new(&dev_args(&idp.issuer, &browser))
        .go()
        .await
        .expect("a login through the recording browser");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    assert_eq!(driver.logins(), 1, "{}", driver.log());

    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("the browser's record"))
            .expect("JSON");
    assert_eq!(record["parent"], "authplug-oidc", "{record}");
    assert_eq!(record["sid"], record["pid"], "a session leader: {record}");
    assert_ne!(record["sid"], record["parent_sid"], "{record}");
    let fds = record["fds"].as_object().expect("the descriptors");
    for fd in ["0", "1", "2"] {
        assert_eq!(fds[fd], "/dev/null", "fd {fd}: {record}");
    }
    assert_eq!(fds.len(), 3, "descriptors besides stdio: {record}");
}

/// Step-up (RFC 6750 §3.1): a `rejected` run whose challenge asks for a
/// scope no login asked for. Not interactive: it fails saying so, and the
/// state it hands back keeps the scope; the next interactive run, with no
/// challenge, logs in asking for it (a refresh could not add it), and the
/// token has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_asking_for_a_scope_leads_to_a_login_asking_for_it() {
    let idp = DevIdp::start(r#"{"resourceScope":"api admin"}"#).expect("the dev IdP starts");
    let driver = LoggedDriver::http(&[]);
    let mut args = dev_args(&idp.issuer, &driver.command);
    args.extend(
        [
            "--token",
            "access",
            "--resource",
            "https://api.example",
            "--scopes",
            "openid,api",
        ]
        .map(String::from),
    );
    let first = Run::new(&args).go().await.expect("the first login");
    assert_eq!(jwt_claims(&token_text(&first))["scope"], "api");

    let challenge = r#"Bearer error="insufficient_scope", scope="api admin""#;
    let (message, kept) = Run::new(&args)
        .state(&first.state)
        .reason(authplug_protocol::Reason::Rejected)
        .interactive(false)
        .env("AUTHPLUG_CHALLENGE", challenge)
        .go_failed_keeping_state()
        .await;
    assert!(
        message.contains("the server asks for the scope admin, which this login was not granted"),
        "{message}"
    );
    assert!(message.contains("a login is needed"), "{message}");
    assert_eq!(
        state_json(&kept)["added_scopes"],
        serde_json::json!(["admin"])
    );
    assert_eq!(driver.logins(), 1);

    let stepped = Run::new(&args)
        .state(&kept)
        .reason(authplug_protocol::Reason::Refresh)
        .go()
        .await
        .expect("a login asking for admin");
    assert_eq!(driver.logins(), 2, "{}", driver.log());
    let scope = jwt_claims(&token_text(&stepped))["scope"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut scopes: Vec<&str> = scope.split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["admin", "api"]);
    // And the grant now has it: the next refresh needs no login.
    let refreshed = Run::new(&args)
        .state(&stepped.state)
        .reason(authplug_protocol::Reason::Rejected)
        .interactive(false)
        .go()
        .await
        .expect("a refresh");
    assert!(jwt_claims(&token_text(&refreshed))["scope"]
        .as_str()
        .is_some_and(|s| s.contains("admin")));
    assert_eq!(driver.logins(), 2);

    // A server naming yet another scope right after: no second login
    // within the pause (a server must not open a browser at each request).
    let error = Run::new(&args)
        .state(&refreshed.state)
        .reason(authplug_protocol::Reason::Rejected)
        .env(
            "AUTHPLUG_CHALLENGE",
            r#"Bearer error="insufficient_scope", scope="api admin more""#,
        )
        .go()
        .await
        .expect_err("no second step-up so soon");
    assert!(
        error.to_string().contains("yet more scopes (more)"),
        "{error}"
    );
    assert_eq!(driver.logins(), 2, "{}", driver.log());
}
