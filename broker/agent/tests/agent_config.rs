//! The agent's config file: read whole from a pipe, refused over its limit
//! or with out-of-range durations, warned about when others can read it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod support;
use support::*;

#[test]
fn a_config_file_is_read_whole_from_a_pipe_and_refused_over_its_limit() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", "echo tok-piped");
    let config_text = format!("[profiles.main]\ncommand = \"'{}'\"\n", plugin.display());
    // Like `authplug agent --config <(decrypt config.toml.gpg)`.
    let fifo = scratch.path("config.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let writer = std::thread::spawn({
        let (fifo, text) = (fifo.clone(), config_text.clone());
        move || std::fs::write(fifo, text).expect("write the fifo")
    });
    let socket = scratch.socket();
    let mut agent = agent_command(&fifo, &socket).spawn().expect("agent");
    writer.join().expect("writer");
    wait_for_socket(&socket);
    assert_eq!(stdout(&token_cli(&socket, &[])), "tok-piped\n");
    let _ = agent.kill();
    let _ = agent.wait();

    // Comments alone make it valid TOML, but no config needs a MiB.
    let config = scratch.path("config.toml");
    let padding = "# padding\n".repeat(authplug_agent::config::CONFIG_LIMIT / 10 + 1);
    std::fs::write(&config, format!("{config_text}{padding}")).expect("config");
    let message = agent_refusal(
        &config,
        &scratch.path("other.sock"),
        "a config over the limit",
    );
    assert!(
        message.contains("cannot read config file")
            && message.contains("config.toml")
            && message.contains("larger than the limit"),
        "{message}"
    );
}

/// Starts `authplug agent --config CONFIG` and expects it to refuse the
/// file: it must exit with an error (an agent that took the file would
/// serve on, so it is stopped and the test fails). Returns its stderr.
fn agent_refusal(config: &Path, socket: &Path, what: &str) -> String {
    let mut agent = agent_command(config, socket)
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = agent.kill();
            let _ = agent.wait();
            panic!("{what} was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = agent.wait_with_output().expect("agent");
    assert!(!output.status.success(), "{what} was accepted");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn out_of_range_durations_in_the_config_file_are_refused_by_name() {
    let scratch = Scratch::new();
    let config = scratch.path("config.toml");
    for (field, value) in [("cooldown", "1e19"), ("timeout", "0"), ("skew", "1e12")] {
        std::fs::write(
            &config,
            format!("[profiles.ok]\ncommand = \"x\"\n[profiles.big]\ncommand = \"x\"\n{field} = {value}\n"),
        )
        .expect("config");
        let message = agent_refusal(&config, &scratch.socket(), &format!("{field} = {value}"));
        assert!(
            message.contains("profile `big`")
                && message.contains(&format!("{field} must be a number of seconds")),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
}

#[test]
fn a_config_file_others_can_read_is_warned_about_in_the_log() {
    let scratch = Scratch::new();
    let config = scratch.path("config.toml");
    std::fs::write(
        &config,
        "[profiles.main]\ncommand = \"true\"\nenv = { CLIENT_SECRET = \"s3cr3t\" }\n",
    )
    .expect("config");
    let agent_log = |mode: u32| -> String {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let log = scratch.path("agent.stderr");
        let mut child = agent_command(&config, &scratch.socket())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("agent");
        wait_for_socket(&scratch.socket());
        let _ = child.kill();
        let _ = child.wait();
        std::fs::read_to_string(&log).expect("log")
    };
    let shared = agent_log(0o644);
    assert!(
        shared.contains("WARN")
            && shared.contains("readable by other users (mode 644)")
            && shared.contains("chmod 600"),
        "{shared}"
    );
    assert!(!shared.contains("s3cr3t"), "{shared}");
    let private = agent_log(0o600);
    assert!(!private.contains("other users"), "{private}");
}

#[test]
fn an_edited_config_is_picked_up_without_a_restart_and_keeps_unchanged_logins() {
    let scratch = Scratch::new();
    let one = scratch.plugin("one", COUNTING);
    let two = scratch.plugin("two", COUNTING);
    let config = scratch.path("config.toml");
    let profile = |name: &str, plugin: &Path, extra: &str| {
        format!(
            "[profiles.{name}]\ncommand = {:?}\n{extra}",
            plugin.display().to_string()
        )
    };
    std::fs::write(&config, profile("one", &one, "")).unwrap();
    let socket = scratch.socket();
    let mut agent = agent_command(&config, &socket)
        .stderr(Stdio::null())
        .spawn()
        .expect("agent");
    wait_for_socket(&socket);
    let token_of = |name: &str| stdout(&token_cli(&socket, &["--profile", name]));
    assert_eq!(token_of("one"), "tok-1\n");

    // A profile that is not there yet: the message names the file.
    let missing = token_cli(&socket, &["--profile", "two"]);
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("no profile named `two` (known profiles: one; the agent's config file is")
            && said.contains("config.toml, which it rereads when it changes"),
        "{said}"
    );

    // Added: served at once; `one`, unchanged, keeps its cached token.
    std::fs::write(
        &config,
        format!("{}{}", profile("one", &one, ""), profile("two", &two, "")),
    )
    .unwrap();
    assert_eq!(token_of("two"), "tok-1\n");
    assert_eq!(token_of("one"), "tok-1\n");
    assert_eq!(scratch.runs("one"), ["initial"], "one was not logged out");

    // A tool's setting edited (git's username): the login stays, once
    // the agent has looked again (a profile it has: at most RECHECK later).
    let recheck = authplug_agent::reload::RECHECK + Duration::from_millis(50);
    std::fs::write(
        &config,
        format!(
            "{}{}",
            profile("one", &one, "git_username = \"x-token-auth\"\n"),
            profile("two", &two, "")
        ),
    )
    .unwrap();
    std::thread::sleep(recheck);
    assert_eq!(token_of("one"), "tok-1\n");
    assert_eq!(scratch.runs("one"), ["initial"], "one was not logged out");

    // Edited: `one` starts afresh (the plugin's settings changed).
    std::fs::write(
        &config,
        format!(
            "{}{}",
            profile("one", &one, "skew = 5\n"),
            profile("two", &two, "")
        ),
    )
    .unwrap();
    std::thread::sleep(recheck);
    assert_eq!(token_of("one"), "tok-1\n");
    assert_eq!(scratch.runs("one"), ["initial", "initial"]);

    // A login built on another's starts afresh when that one does.
    let chained = |one_extra: &str| {
        format!(
            "{}{}",
            profile("one", &one, one_extra),
            profile("two", &two, "subject_profile = \"one\"\n")
        )
    };
    std::fs::write(&config, chained("skew = 5\n")).unwrap();
    std::thread::sleep(recheck);
    assert_eq!(token_of("two"), "tok-1\n");
    assert_eq!(
        scratch.runs("two"),
        ["initial", "initial"],
        "two was edited"
    );
    std::fs::write(&config, chained("skew = 6\n")).unwrap();
    std::thread::sleep(recheck);
    assert_eq!(token_of("two"), "tok-1\n");
    assert_eq!(
        scratch.runs("two"),
        ["initial", "initial", "initial"],
        "two, unchanged, was built on one's old login"
    );

    // Broken: the profiles stay as they were until it is fixed.
    std::fs::write(&config, "[profiles.one\n").unwrap();
    std::thread::sleep(recheck);
    assert_eq!(token_of("two"), "tok-1\n");
    assert_eq!(token_of("one"), "tok-1\n");
    assert_eq!(
        scratch.runs("one").len(),
        3,
        "the broken file changed nothing (one's third login is the skew edit's)"
    );
    let _ = agent.kill();
    let _ = agent.wait();
}
