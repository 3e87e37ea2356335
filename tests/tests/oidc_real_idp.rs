//! authplug-oidc against a real provider: npm `oidc-provider` 9.13.3
//! (plugins/oidc/benches/bench-idp.mjs, installed from its lockfile with
//! `npm ci` on first use), logging in through its real login form with the
//! curl form walker plugins/oidc/benches/login-driver.sh as the browser.

mod oidc_support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use authplug_protocol::Reason;
use authplug_tests::workspace;
use oidc_support::{jwt_claims, state_json, Run};
use tokio::io::AsyncBufReadExt;

fn benches() -> PathBuf {
    workspace().join("plugins/oidc/benches")
}

struct Idp {
    issuer: String,
    child: tokio::process::Child,
}

async fn start_idp() -> Idp {
    let dir = benches();
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = tokio::process::Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm runs");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    let mut child = tokio::process::Command::new("node")
        .arg("bench-idp.mjs")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the IdP starts within 20 s")
        .unwrap()
        .expect("the IdP prints its issuer");
    // Keep draining its stdout (it logs NOTICE lines there).
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Idp { issuer, child }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reuse_offline_and_refresh_against_oidc_provider() {
    let mut idp = start_idp().await;
    let driver = benches().join("login-driver.sh");
    let driver = driver.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("browser-was-called");
    let forbidden = format!("sh -c 'touch {}; exit 1'", marker.display());
    let args = |browser: &str| {
        vec![
            "--issuer".to_owned(),
            idp.issuer.clone(),
            "--client-id".into(),
            "bench".into(),
            "--login-timeout".into(),
            "20".into(),
            "--browser-command".into(),
            browser.to_owned(),
        ]
    };
    let run = |v: Vec<String>| Run::new(&[]).args_from(v);

    // First login, through the provider's real login form.
    let started = Instant::now();
    let first = run(args(driver)).go().await.expect("first login");
    let id_token = first.token.to_str().unwrap().to_owned();
    let claims = jwt_claims(&id_token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "bench");
    assert_eq!(claims["iss"], idp.issuer.as_str());
    let state = state_json(&first.state);
    assert!(
        state["refresh_token"].is_string(),
        "offline_access was granted"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // A silent refresh (forced by `rejected`), no browser.
    let refreshed = run(args(&forbidden))
        .state(&first.state)
        .reason(Reason::Rejected)
        .go()
        .await
        .expect("a refresh");
    assert_eq!(
        jwt_claims(refreshed.token.to_str().unwrap())["sub"],
        "alice"
    );
    let access = |s: &authplug_protocol::State| state_json(s)["access_token"]["value"].clone();
    assert_ne!(access(&refreshed.state), access(&first.state));

    // The provider stops; the valid token is handed out with no network.
    idp.child.kill().await.unwrap();
    let offline = run(args(&forbidden))
        .state(&refreshed.state)
        .interactive(false)
        .go()
        .await
        .expect("the cached token, offline");
    assert_eq!(offline.token, refreshed.token);
    assert!(!marker.exists());
}
