//! The real git with `git-credential-authplug` as its credential helper
//! (`credential.helper = "authplug --profile git"`), against `git
//! http-backend` behind a front that checks the token
//! (`authplug_tests::git_server`), with the agent and `authplug-oidc`
//! against the dev IdP behind it: one login for clone, push and fetch; a
//! revoked token answered 401, which git reports to the helper (`erase`,
//! compare-and-clear) and which fails that command, as with any helper;
//! the next command gets a fresh token from a refresh, without a login.

mod oidc_support;

use authplug_tests::git_client::Git;
use authplug_tests::git_server::GitServer;
use authplug_tests::resource_server::ResourceServer;
use oidc_support::{access_token_argv, agent_runs, agent_token, start_agent, DevIdp, LoggedDriver};

/// The audience the git server's tokens are for.
const AUDIENCE: &str = "https://git.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_and_pushes_with_one_login_and_heals_a_revoked_token() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let (_agent, socket) = start_agent(
        dir.path(),
        "git",
        &access_token_argv(&idp, &driver, AUDIENCE),
    )
    .await;
    let verifier = ResourceServer::new(&idp.issuer, AUDIENCE)
        .await
        .expect("the server gets the IdP's keys");
    let root = dir.path().join("repos");
    std::fs::create_dir_all(&root).unwrap();
    let git = Git::new(dir.path(), &socket, "git");
    git.ok(&root, &["init", "--bare", "-q", "project.git"]);
    git.ok(
        &root.join("project.git"),
        &["config", "http.receivepack", "true"],
    );
    let (server, base) = GitServer::serve(verifier.clone(), &root)
        .await
        .expect("the git server listens");
    let url = format!("{base}/project.git");

    // git says "never prompt": the helper starts no login, and tells git
    // not to ask for a password either.
    let quiet = git.run(
        dir.path(),
        &["clone", "-q", &url, "quiet"],
        &[("GIT_TERMINAL_PROMPT", "0")],
    );
    assert!(!quiet.status.success());
    let said = String::from_utf8_lossy(&quiet.stderr);
    assert!(said.contains("a login is needed"), "{said}");
    assert_eq!(driver.logins(), 0, "{}", driver.log());

    // Clone (the login), commit, push, clone again: one login, one run.
    git.ok(dir.path(), &["clone", "-q", &url, "first"]);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    let (after_login, _) = agent_runs(&socket).await;
    let first = dir.path().join("first");
    std::fs::write(first.join("README"), "hello\n").unwrap();
    git.ok(&first, &["add", "README"]);
    git.ok(&first, &["commit", "-q", "-m", "hello"]);
    git.ok(&first, &["push", "-q", "origin", "main"]);
    git.ok(dir.path(), &["clone", "-q", &url, "second"]);
    let second = dir.path().join("second");
    assert_eq!(
        std::fs::read_to_string(second.join("README")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        agent_runs(&socket).await.0,
        after_login,
        "every command after the login was served from the agent"
    );

    // Revoked at the server: 401, git tells the helper (`erase`), which
    // rejects that token in the agent; that fetch fails, as git does.
    let held = agent_token(&socket).await;
    verifier.revoke(&held);
    let refused = git.run(&second, &["fetch", "-q"], &[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Authentication failed"), "{said}");
    assert_eq!(
        agent_runs(&socket).await.0,
        after_login,
        "erase only clears"
    );

    // The next command: a refresh (reason `rejected`), no login.
    git.ok(&second, &["fetch", "-q"]);
    assert_eq!(
        agent_runs(&socket).await,
        (after_login + 1, "rejected".to_owned())
    );
    assert_ne!(agent_token(&socket).await, held);
    assert_eq!(driver.logins(), 1, "one login in all: {}", driver.log());
    assert!(server.refused() >= 2 && server.served() >= 6);
    // This git (2.46 or later) takes `authtype=Bearer`; older ones get the
    // token as the password (git_credential's unit test).
    assert_eq!(server.served_by_bearer(), server.served());
}

/// A newcomer's first contact: a config file with the profile, no agent
/// running, and `git clone`. The helper starts the agent (the `authplug`
/// program installed beside it, not itself), the login happens, the clone
/// works; the next command is served by that agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_clone_starts_the_agent_on_a_machine_with_none_running() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let dir = tempfile::tempdir().unwrap();
    let driver = LoggedDriver::http(&[]);
    let socket = dir.path().join("run/agent.sock");
    let git = Git::new(dir.path(), &socket, "git");
    // Only the config file, where `authplug` looks for it by default.
    let config_dir = dir.path().join("home/.config/authplug");
    std::fs::create_dir_all(&config_dir).unwrap();
    let command = shell_words::join(access_token_argv(&idp, &driver, AUDIENCE));
    std::fs::write(
        config_dir.join("config.toml"),
        format!(
            "[profiles.git]\ncommand = {}\n",
            serde_json::to_string(&command).unwrap()
        ),
    )
    .unwrap();
    let _stop = authplug_tests::StopAgent(socket.clone());
    assert!(!socket.exists(), "no agent yet");

    let verifier = ResourceServer::new(&idp.issuer, AUDIENCE)
        .await
        .expect("the server gets the IdP's keys");
    let root = dir.path().join("repos");
    std::fs::create_dir_all(&root).unwrap();
    git.ok(&root, &["init", "--bare", "-q", "project.git"]);
    let (_server, base) = GitServer::serve(verifier, &root)
        .await
        .expect("the git server listens");
    let url = format!("{base}/project.git");

    git.ok(dir.path(), &["clone", "-q", &url, "first"]);
    assert_eq!(driver.logins(), 1, "{}", driver.log());
    assert!(socket.exists(), "the helper started the agent");
    let (runs, _) = agent_runs(&socket).await;
    git.ok(dir.path(), &["clone", "-q", &url, "second"]);
    assert_eq!(agent_runs(&socket).await.0, runs, "served by that agent");
}
