//! The refresh-token example plugins, one per language a plugin author may
//! write in: Python (plugins/examples/python/refresh_token.py), Go
//! (plugins/examples/go, standard library only; built here with the
//! machine's `go`) and Node (plugins/examples/node/refresh_token.mjs, no
//! dependencies). Each trades its refresh token at the dev IdP's token
//! endpoint (npm oidc-provider: the refresh_token grant, with rotation),
//! after a login there gave it its first one, and each is run the same
//! ways: through the real host (rotation, the expiry on fd 4, an epithet
//! host, a spent refresh token said as "a login is needed" by rule 6's
//! exit, the keep-state exit after a rotation whose answer is unusable, an
//! endpoint that is down), through `authplug check`, and through the agent.

mod oidc_support;

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

use authplug_protocol::host::{run, PluginCommand, RunError};
use authplug_protocol::State;
use authplug_tests::host_options::{epithet_options, expires_in, options};
use authplug_tests::idp::{login_http_command, DevIdp};
use authplug_tests::{target_dir, workspace, workspace_binary};

/// The dev IdP's public client, which may refresh (with rotation).
const CLIENT_ID: &str = "demo";

/// Loopback traffic must not go through a proxy a developer has set.
const NO_PROXY: [(&str, &str); 2] = [("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1")];

#[derive(Debug, Clone, Copy)]
enum Lang {
    Python,
    Go,
    Node,
}

/// The Go example, built once per test process.
fn go_example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let output = target_dir().join("examples-go").join("refreshtoken");
            let status = std::process::Command::new("go")
                .args(["build", "-o"])
                .arg(&output)
                .arg(".")
                .current_dir(workspace().join("plugins/examples/go"))
                // Standard library only: nothing to download.
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .status()
                .expect("go runs (scripts/setup installs golang-go)");
            assert!(status.success(), "go build of plugins/examples/go failed");
            output
        })
        .clone()
}

/// The example's argv for a token endpoint.
fn argv(lang: Lang, url: &str) -> Vec<String> {
    let examples = workspace().join("plugins/examples");
    let mut argv: Vec<String> = match lang {
        Lang::Python => vec![
            "python3".into(),
            examples
                .join("python/refresh_token.py")
                .display()
                .to_string(),
        ],
        Lang::Go => vec![go_example().display().to_string()],
        Lang::Node => vec![
            "node".into(),
            examples
                .join("node/refresh_token.mjs")
                .display()
                .to_string(),
        ],
    };
    argv.extend([
        "--token-endpoint".into(),
        url.into(),
        "--client-id".into(),
        CLIENT_ID.into(),
    ]);
    argv
}

fn command(lang: Lang, url: &str) -> PluginCommand {
    PluginCommand::from_argv(argv(lang, url)).expect("an argv")
}

/// The example as an epithet host runs it: a pipe on fd 3, and none of the
/// protocol's variables.
fn as_epithet_runs_it(lang: Lang, url: &str) -> PluginCommand {
    let mut words = oidc_support::as_epithet_runs_it();
    words.extend(argv(lang, url).into_iter().map(Into::into));
    PluginCommand::from_argv(words).expect("an argv")
}

/// A dev IdP started with `config` and a fresh refresh token from it, got
/// the way a person gets one: a login (authplug-oidc with the dev IdP's
/// HTTP login driver as the browser). The IdP, its token endpoint, the
/// refresh token.
async fn idp_with_refresh_token(config: &str) -> (DevIdp, String, String) {
    let idp = DevIdp::start(config).expect("the dev IdP starts");
    let login = PluginCommand::new(workspace_binary("authplug-oidc", "authplug-oidc")).args([
        "--issuer",
        &idp.issuer,
        "--client-id",
        CLIENT_ID,
        "--flow",
        "browser",
        "--browser-command",
        &login_http_command(&[]),
        "--login-timeout",
        "20",
    ]);
    let mut login_options = options(&NO_PROXY);
    login_options.interactive = true;
    let output = run(&login, &State::default(), &login_options)
        .await
        .expect("a login at the dev IdP");
    let state: serde_json::Value =
        serde_json::from_slice(output.state.as_bytes()).expect("authplug-oidc's JSON state");
    let refresh_token = state["refresh_token"]
        .as_str()
        .expect("a refresh token in the state")
        .to_owned();
    let token_endpoint = format!("{}/token", idp.issuer);
    (idp, token_endpoint, refresh_token)
}

fn refresh_token_in(state: &State) -> String {
    let state: serde_json::Value = serde_json::from_slice(state.as_bytes()).expect("JSON state");
    assert_eq!(
        state.as_object().map(|o| o.len()),
        Some(1),
        "only the refresh token is kept"
    );
    state["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

async fn trades_and_rotates_its_refresh_token(lang: Lang) {
    let (_idp, url, bootstrap) = idp_with_refresh_token("{}").await;
    let command = command(lang, &url);
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &bootstrap));

    let first = run(&command, &State::default(), &options(&env))
        .await
        .unwrap_or_else(|e| panic!("{lang:?}: the first refresh: {e}"));
    let first_refresh = refresh_token_in(&first.state);
    assert_ne!(
        first_refresh, bootstrap,
        "the IdP rotated the refresh token"
    );
    // The dev IdP's expires_in, said on fd 4 (rule 10): an hour.
    assert!(
        expires_in(first.expires_at, 3600),
        "{lang:?}: {:?}",
        first.expires_at
    );
    assert_eq!(first.info_problem, None);

    // The state, not the bootstrap variable, is what the second run uses.
    // Under an epithet host (no variables, no fd 4) it runs unchanged, and
    // the rotated refresh token still reaches the host on fd 3.
    let second = run(
        &as_epithet_runs_it(lang, &url),
        &first.state,
        &epithet_options(&env),
    )
    .await
    .unwrap_or_else(|e| panic!("{lang:?}: the second refresh: {e}"));
    assert_ne!(second.token.as_bytes(), first.token.as_bytes());
    let second_refresh = refresh_token_in(&second.state);
    assert_ne!(second_refresh, first_refresh);

    // A spent refresh token is refused: only a login helps, which the
    // plugin says by the exit code the host offers (rule 6); it wrote no
    // state (the host keeps the caller's).
    let error = run(&command, &first.state, &options(&NO_PROXY))
        .await
        .expect_err("a spent refresh token is refused");
    assert!(
        matches!(error, RunError::LoginNeeded { .. }),
        "{lang:?}: {error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("invalid_grant") && message.contains("log in again"),
        "{lang:?}: {message}"
    );
    for secret in [&bootstrap, &first_refresh, &second_refresh] {
        assert!(!message.contains(secret.as_str()), "{lang:?}: {message}");
    }

    // The IdP took the reuse of a spent refresh token for theft and revoked
    // the whole grant: under an epithet host, the plain failure it knows.
    let error = run(&command, &second.state, &epithet_options(&NO_PROXY))
        .await
        .expect_err("the grant was revoked");
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{lang:?}: {error:?}"
    );
    assert!(
        error.to_string().contains("invalid_grant"),
        "{lang:?}: {error}"
    );
}

async fn keeps_a_rotated_refresh_token_when_the_answer_fails(lang: Lang) {
    let (_idp, url, bootstrap) =
        idp_with_refresh_token(r#"{"bend":{"accessTokenUnusable":true}}"#).await;
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &bootstrap));
    let mut error = run(&command(lang, &url), &State::default(), &options(&env))
        .await
        .expect_err("no usable access token");
    let message = error.to_string();
    assert!(
        message.contains("no usable access_token")
            && message.contains("the new refresh token is kept"),
        "{lang:?}: {message}"
    );
    let kept = error
        .take_new_state()
        .expect("the rotated refresh token handed back");
    let rotated = refresh_token_in(&kept);
    assert_ne!(rotated, bootstrap);
    assert!(!message.contains(&rotated) && !message.contains(&bootstrap));

    // Under epithet, nothing can be kept: said plainly.
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &rotated));
    let error = run(
        &command(lang, &url),
        &State::default(),
        &epithet_options(&env),
    )
    .await
    .expect_err("no usable access token");
    assert!(
        error
            .to_string()
            .contains("this host cannot keep it: log in again"),
        "{lang:?}: {error}"
    );
}

async fn fails_clearly_when_the_endpoint_is_down(lang: Lang) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", "rt-0"));
    let error = run(&command(lang, &url), &State::default(), &options(&env))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RunError::Exited { code: 1, .. }),
        "{lang:?}: {error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("cannot reach the token endpoint"),
        "{lang:?}: {error}"
    );
}

async fn authplug_cli(args: &[String], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(authplug_tests::authplug_binary())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("authplug runs")
}

async fn passes_authplug_check(lang: Lang) {
    let (_idp, url, bootstrap) = idp_with_refresh_token("{}").await;
    let mut env = NO_PROXY.to_vec();
    env.push(("EXAMPLE_REFRESH_TOKEN", &bootstrap));
    let mut args: Vec<String> = ["check", "--non-interactive", "--"]
        .map(String::from)
        .to_vec();
    args.extend(argv(lang, &url));
    let output = authplug_cli(&args, &env).await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && report.contains("conforms to the authplug protocol"),
        "{lang:?}:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!report.contains("FAIL"), "{report}");
    for expected in [
        "returned a new state",
        "run 2 printed a different token",
        // Run 2 could only succeed by trading the rotated token from its
        // state; the control run, with only the spent bootstrap, fails.
        "ok    run 2 used its state: without it the plugin failed",
        "ok    token info on fd 4",
        "ok    an unknown reason was taken like refresh",
        "ok    after `rejected` the plugin handed out a new token",
    ] {
        assert!(
            report.contains(expected),
            "{lang:?}: no {expected:?} in\n{report}"
        );
    }
}

/// Through the agent: a token, the same from memory, and after a refusal a
/// new one traded with the rotated refresh token from the agent's memory.
async fn serves_through_the_agent(lang: Lang) {
    let (_idp, url, bootstrap) = idp_with_refresh_token("{}").await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[profiles.example]\ncommand = {}\nenv = {{ EXAMPLE_REFRESH_TOKEN = {}, NO_PROXY = \"127.0.0.1\" }}\n",
        serde_json::to_string(&shell_words::join(argv(lang, &url))).unwrap(),
        serde_json::to_string(&bootstrap).unwrap(),
    );
    let (_agent, socket) = oidc_support::start_agent_with_config(dir.path(), &config).await;
    let token = oidc_support::agent_token(&socket).await;
    assert_eq!(
        oidc_support::agent_token(&socket).await,
        token,
        "from memory"
    );
    let reject = tokio::process::Command::new(authplug_tests::authplug_binary())
        .args(["reject", "--current", "--socket"])
        .arg(&socket)
        .output()
        .await
        .expect("authplug reject");
    assert!(reject.status.success());
    let renewed = oidc_support::agent_token(&socket).await;
    assert_ne!(renewed, token, "{lang:?}");
    let (runs, reason) = oidc_support::agent_runs(&socket).await;
    assert_eq!((runs, reason.as_str()), (2, "rejected"), "{lang:?}");
}

macro_rules! for_each_language {
    ($($test:ident),* $(,)?) => {
        mod python {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Lang::Python).await })*
        }
        mod go {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Lang::Go).await })*
        }
        mod node {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Lang::Node).await })*
        }
    };
}

for_each_language!(
    trades_and_rotates_its_refresh_token,
    keeps_a_rotated_refresh_token_when_the_answer_fails,
    fails_clearly_when_the_endpoint_is_down,
    passes_authplug_check,
    serves_through_the_agent,
);
