//! `git-credential-authplug` as git runs it, against a real agent: the
//! answer in the form git takes, the profile by host from `[git.hosts]`,
//! the profile's `git_username`, `erase` as compare-and-clear, `store` and
//! unknown operations doing nothing, and `quit=1` when no token can be
//! had. (With the real git and a git server: tests/tests/git.rs.)

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};

mod support;
use support::*;

fn helper(socket: &std::path::Path, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_git-credential-authplug"));
    command
        .args(args)
        .env("AUTHPLUG_SOCKET", socket)
        .env_remove("AUTHPLUG_CONFIG")
        .env_remove("GIT_TERMINAL_PROMPT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the helper runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("the helper ends")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn gives_the_token_by_host_and_erase_clears_only_that_token() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("forge", COUNTING);
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.forge]\ncommand = {:?}\ngit_username = \"x-token-auth\"\n\n[git.hosts]\n\"git.example:8443\" = \"forge\"\n",
            plugin.display().to_string()
        ),
    )
    .unwrap();
    // Private, as a config file that may hold secrets should be (else the
    // helper warns, as the agent does).
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The agent gets the profile from its flag; the helper reads the file
    // for the mapping and the username.
    let agent = Agent::start(&scratch.socket(), &[("forge", &plugin)]);
    let config = config.display().to_string();
    let with_config = ["--config", config.as_str()];

    // A git without `authtype`: the token as the password.
    let get = |input: &str| {
        helper(
            &agent.socket,
            &[with_config[0], with_config[1], "get"],
            input,
            &[],
        )
    };
    let out = get("protocol=https\nhost=git.example:8443\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text(&out), "username=x-token-auth\npassword=tok-1\n");
    // A git that takes `authtype`: a bearer credential, not to be stored.
    let out = get("capability[]=authtype\nprotocol=https\nhost=git.example:8443\n");
    assert_eq!(
        text(&out),
        "capability[]=authtype\nauthtype=Bearer\ncredential=tok-1\nephemeral=1\n"
    );
    // Another host: not ours, nothing said, git asks elsewhere.
    let out = get("protocol=https\nhost=github.com\n");
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());

    // `store` keeps nothing, an unknown operation is ignored.
    for op in ["store", "capability"] {
        let out = helper(
            &agent.socket,
            &[with_config[0], with_config[1], op],
            "protocol=https\nhost=git.example:8443\npassword=tok-1\n",
            &[],
        );
        assert!(out.status.success() && out.stdout.is_empty(), "{op}");
    }
    assert_eq!(scratch.runs("forge"), ["initial"]);

    // `erase` of a stale token clears nothing; of the current one, clears.
    let erase = |token: &str| {
        helper(
            &agent.socket,
            &[with_config[0], with_config[1], "erase"],
            &format!(
                "protocol=https\nhost=git.example:8443\nusername=x-token-auth\npassword={token}\n"
            ),
            &[],
        )
    };
    assert!(erase("tok-0").status.success());
    assert_eq!(
        text(&get("protocol=https\nhost=git.example:8443\n")),
        "username=x-token-auth\npassword=tok-1\n"
    );
    assert!(erase("tok-1").status.success());
    assert_eq!(
        text(&get("protocol=https\nhost=git.example:8443\n")),
        "username=x-token-auth\npassword=tok-2\n"
    );
    assert_eq!(scratch.runs("forge"), ["initial", "rejected"]);
}

#[test]
fn with_profile_and_no_login_possible_it_tells_git_to_stop_asking() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "login",
        r#"[ "$AUTHPLUG_INTERACTIVE" = 0 ] && { echo "a login is needed" >&2; exit 1; }
echo tok"#,
    );
    let agent = Agent::start(&scratch.socket(), &[("login", &plugin)]);
    let out = helper(
        &agent.socket,
        &["--profile", "login", "get"],
        "protocol=https\nhost=anywhere\n",
        &[("GIT_TERMINAL_PROMPT", "0")],
    );
    assert!(!out.status.success());
    assert_eq!(text(&out), "quit=1\n");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("a login is needed"), "{said}");
    assert!(said.contains("no token for profile `login`"), "{said}");
    // Without GIT_TERMINAL_PROMPT=0 the same run may log in.
    let out = helper(
        &agent.socket,
        &["--profile", "login", "get"],
        "host=anywhere\n",
        &[],
    );
    assert_eq!(text(&out), "username=oauth2\npassword=tok\n");
}

#[test]
fn what_git_cannot_carry_or_did_not_send_is_refused_in_words() {
    let scratch = Scratch::new();
    // A token with a line break inside (only one trailing newline is the
    // protocol's to remove): git's line format cannot carry it.
    let plugin = scratch.plugin("odd", r#"printf 'to\nken\n'"#);
    let agent = Agent::start(&scratch.socket(), &[("odd", &plugin)]);
    let out = helper(&agent.socket, &["--profile", "odd", "get"], "host=h\n", &[]);
    assert!(!out.status.success());
    assert_eq!(text(&out), "quit=1\n", "no partial credential");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("holds a line break or NUL, which git's helper protocol cannot carry"),
        "{said}"
    );

    // Not git's format at all: said, and nothing asked of the agent.
    let out = helper(
        &agent.socket,
        &["--profile", "odd", "get"],
        "hello there\n",
        &[],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("git sent a line that is not key=value"),
        "{said}"
    );
    assert_eq!(scratch.runs("odd").len(), 1);
}

#[test]
fn an_opaque_tokens_reported_expiry_reaches_git() {
    let scratch = Scratch::new();
    // Opaque, and reported on fd 4 (PROTOCOL.md rule 10) to expire at
    // 1893456000 (2030-01-01).
    let plugin = scratch.plugin(
        "forge",
        "cat > /dev/null\nprintf '{\"expires_at\":1893456000}' >&4\necho opaque-token",
    );
    let agent = Agent::start(&scratch.socket(), &[("forge", &plugin)]);
    let out = helper(
        &agent.socket,
        &["--profile", "forge", "get"],
        "protocol=https\nhost=git.example\n",
        &[],
    );
    assert_eq!(
        text(&out),
        "username=oauth2\npassword=opaque-token\npassword_expiry_utc=1893456000\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn with_no_agent_it_starts_one_with_the_authplug_beside_it_or_says_what_is_missing() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("forge", COUNTING);
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.forge]\ncommand = {:?}\n",
            plugin.display().to_string()
        ),
    )
    .unwrap();
    let socket = scratch.socket();
    let _stop = StopAgent(socket.clone());
    let config_arg = config.display().to_string();
    // Installed as usual, beside `authplug`: the agent starts.
    let out = helper(
        &socket,
        &["--profile", "forge", "--config", &config_arg, "get"],
        "protocol=https\nhost=git.example\n",
        &[],
    );
    assert_eq!(
        text(&out),
        "username=oauth2\npassword=tok-1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scratch.runs("forge"), ["initial"]);

    // A helper alone, with no `authplug` beside it or on PATH: no agent
    // can be started, and it says what to do.
    let alone = scratch.path("alone");
    std::fs::create_dir_all(&alone).unwrap();
    let copy = alone.join("git-credential-authplug");
    std::fs::copy(env!("CARGO_BIN_EXE_git-credential-authplug"), &copy).unwrap();
    let other_socket = scratch.path("other/agent.sock");
    let out = std::process::Command::new(&copy)
        .args(["--profile", "forge", "--config", &config_arg, "get"])
        .env("AUTHPLUG_SOCKET", &other_socket)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("the helper runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no `authplug` program beside") && said.contains("scripts/install"),
        "{said}"
    );
    assert_eq!(text(&out), "quit=1\n", "git is told not to prompt");
}
