//! authplug-oidc against other local users: the loopback login listener
//! cannot be starved by idle or trickling connections, and the browser it
//! starts gets no secret in its environment. Real processes, loopback only.

mod oidc_support;

use oidc_support::stub::{Case, Stub};
use oidc_support::{jwt_claims, stub_args, token_text, Run};

/// A "browser" that first floods the plugin's loopback listener (its port
/// is in the authorization URL's redirect_uri) with connections that send
/// nothing and connections that trickle half a request header, holds them
/// all, then completes the real login with curl.
const FLOODING_BROWSER: &str = r#"
import resource, socket, subprocess, sys, time, urllib.parse
url = sys.argv[-1]
query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
redirect = urllib.parse.urlparse(query["redirect_uri"][0])
address = (redirect.hostname, redirect.port)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
held = []
opened = 0
# The listener may drop any of these at any moment: that is the point.
for i in range(700):
    try:
        s = socket.create_connection(address, timeout=5)
        opened += 1
        if i >= 600:
            s.send(b"GET /callback?state=x HTTP/1.1\r\nHost: ")
        held.append(s)
    except OSError:
        pass
assert opened >= 600, opened
sys.exit(subprocess.run(["curl", "-sS", "-L", "-o", "/dev/null", "--max-time", "20", url]).returncode)
"#;

/// The issue's case: more connections than the plugin has descriptors (a
/// soft limit of 256 here), none of them sending anything. The real
/// callback still gets through, and the login completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_cannot_starve_the_login_listener() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("flood.py");
    std::fs::write(&script, FLOODING_BROWSER).unwrap();
    let stub = Stub::start(Case::Honest).await;
    let log = dir.path().join("flood.log");
    // The URL is appended: $0 in the script; the flood's errors go to a log.
    let browser = format!(
        r#"sh -c 'exec python3 {} "$0" 2>{}'"#,
        script.display(),
        log.display()
    );
    let mut args = stub_args(&stub.issuer, "browser", &browser);
    let at = args.iter().position(|a| a == "--login-timeout").unwrap();
    args[at + 1] = "30".to_owned();
    let output = Run::new(&args).nofile_limit(256).go().await;
    let output = output.unwrap_or_else(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("the login did not complete through the flood: {e}\nthe flood's log:\n{log}")
    });
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    assert_eq!(stub.authorize_hits(), 1);
}

/// The browser lives long and starts other programs: it must not inherit
/// the client secret or the protocol's variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_gets_no_authplug_variable_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("browser-env");
    let stub = Stub::start(Case::Honest).await;
    // The URL is appended, so it is $0 in the script.
    let browser = format!(
        r#"sh -c 'env > {}; exec curl -sS -L -o /dev/null "$0"'"#,
        env_file.display()
    );
    let output = Run::new(&stub_args(&stub.issuer, "browser", &browser))
        .env("AUTHPLUG_OIDC_CLIENT_SECRET", "s3cret-for-the-test")
        .env("AUTHPLUG_SOMETHING_ELSE", "x")
        .env("KEEP_ME", "kept")
        .go()
        .await
        .expect("a login");
    assert_eq!(jwt_claims(&token_text(&output))["sub"], "alice");
    let env = std::fs::read_to_string(&env_file).expect("the browser ran");
    assert!(env.contains("KEEP_ME=kept"), "{env}");
    assert!(!env.contains("s3cret-for-the-test"), "{env}");
    let leaked: Vec<&str> = env.lines().filter(|l| l.starts_with("AUTHPLUG_")).collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// authplug-oidc holds the refresh token and the tokens: no core file, no
/// same-user debugger. Run as nobody (so that a dumpable process's /proc
/// entries would be nobody's) while it waits for a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_keeps_out_of_core_dumps_and_debuggers() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!("skipped: needs root to run the plugin as another user");
        return;
    }
    let stub = Stub::start(Case::Honest).await;
    // A copy nobody may run, wherever the checkout is.
    let shared = tempfile::tempdir().unwrap();
    let binary = shared.path().join("authplug-oidc");
    std::fs::copy(oidc_support::plugin_binary(), &binary).unwrap();
    for path in [shared.path(), binary.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut plugin = std::process::Command::new(&binary)
        .args(stub_args(&stub.issuer, "browser", "true"))
        .uid(65534)
        .gid(65534)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the plugin as nobody");
    // It is waiting for the login once it has said where to go.
    let stderr = plugin.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let said = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(said.contains("visit"), "{said}");
    let pid = plugin.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let owner = std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid();
    let _ = plugin.kill();
    let _ = plugin.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("the core limit");
    assert!(
        core.split_whitespace().skip(4).take(2).all(|v| v == "0"),
        "{core}"
    );
    assert_eq!(
        owner, 0,
        "a dumpable process's /proc entries are its own user's"
    );
}
