//! authplug-oidc's loopback listener and login rules, against the stub
//! provider (oidc_support/stub.rs), which redirects straight back so that
//! small scripts can stand in for the browser.

mod oidc_support;

use std::path::Path;

use authplug_protocol::host::RunError;
use authplug_protocol::Reason;
use oidc_support::stub::{Case, Stub};
use oidc_support::Run;

fn base_args<'a>(stub: &'a Stub, browser_command: &'a str) -> Vec<&'a str> {
    vec![
        "--issuer",
        &stub.issuer,
        "--client-id",
        "stub-client",
        "--flow",
        "browser",
        "--browser-command",
        browser_command,
        "--http-timeout",
        "5",
    ]
}

/// A "browser" that first sends a forged callback (wrong state) to the
/// listener, checks it is refused, then completes the real login.
const STRAY_FIRST: &str = r#"
import sys, urllib.parse, urllib.request, urllib.error, subprocess
url = sys.argv[1]
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
subprocess.run(["curl", "-sS", "-L", "-o", "/dev/null", url], check=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_callbacks_are_ignored_and_the_login_completes() {
    let stub = Stub::start(Case::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stray.py");
    std::fs::write(&script, STRAY_FIRST).unwrap();
    let browser = format!("python3 {}", script.display());
    let output = Run::new(&base_args(&stub, &browser))
        .go()
        .await
        .expect("the login completes after the forged callbacks");
    assert!(!output.token.is_empty());
    assert!(
        !output.stderr_tail.contains("exited with"),
        "{}",
        output.stderr_tail
    );
    assert_eq!(stub.token_hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout() {
    let stub = Stub::start(Case::Honest).await;
    let mut args = base_args(&stub, "true");
    args.extend(["--login-timeout", "1"]);
    let error = Run::new(&args).go().await.expect_err("nobody logs in");
    let message = error.to_string();
    assert!(matches!(error, RunError::Exited { .. }), "{message}");
    assert!(
        message.contains("not completed within 1 seconds"),
        "{message}"
    );
    assert_eq!(stub.token_hits(), 0);
}

fn marker_browser(dir: &Path) -> (String, std::path::PathBuf) {
    let marker = dir.join("browser-was-called");
    (format!("touch {}", marker.display()), marker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_interactive_never_opens_a_browser() {
    let stub = Stub::start(Case::Honest).await;
    let dir = tempfile::tempdir().unwrap();
    let (browser, marker) = marker_browser(dir.path());
    for flow in ["browser", "auto", "device"] {
        let mut args = base_args(&stub, &browser);
        args[5] = flow;
        let error = Run::new(&args)
            .interactive(false)
            .go()
            .await
            .expect_err("a login is needed");
        let message = error.to_string();
        assert!(message.contains("AUTHPLUG_INTERACTIVE=0"), "{message}");
        assert!(!message.contains("visit"), "{message}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!marker.exists(), "the browser command ran");
    assert_eq!(stub.token_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_in_state_needs_no_network_but_rejected_does() {
    let stub = Stub::start(Case::Honest).await;
    let curl = "curl -sS -L -o /dev/null";
    let first = Run::new(&base_args(&stub, curl)).go().await.expect("login");
    let issuer = stub.issuer.clone();
    stub.stop(); // the provider is gone
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (browser, marker) = marker_browser(dir.path());
    let args = vec![
        "--issuer",
        &issuer,
        "--client-id",
        "stub-client",
        "--browser-command",
        &browser,
    ];
    let second = Run::new(&args)
        .state(&first.state)
        .interactive(false)
        .go()
        .await
        .expect("the cached token, offline");
    assert_eq!(second.token, first.token);
    assert_eq!(second.state, first.state, "state handed back as it was");

    // Rejected: the cached token may not be reused, and the provider is
    // down, so the run fails (without a browser) and the state stays.
    let error = Run::new(&args)
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect_err("the refresh cannot reach the provider");
    let message = error.to_string();
    assert!(
        message.contains("could not be reached") || message.contains("discovery"),
        "{message}"
    );
    assert!(!marker.exists(), "a network error must not open a browser");
}
