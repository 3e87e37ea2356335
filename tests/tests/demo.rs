//! README's demo command, `scripts/demo`, run as a newcomer would: once on a
//! machine where no browser can be opened (the device flow, which the demo
//! approves with the dev IdP's scripted login), and once pointed with
//! `--issuer/--client-id` at a provider it did not start, with `$BROWSER`
//! set (the browser flow).

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authplug_tests::idp::{login_http_command, DevIdp};
use authplug_tests::{target_dir, without_package_env, workspace};

struct Demo {
    success: bool,
    output: String,
}

fn run_demo(args: &[&str], env: &[(&str, &str)]) -> Demo {
    let mut command = Command::new("bash");
    command
        .arg(workspace().join("scripts/demo"))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("PATH", path_with_cargo())
        // Nothing here says a browser can be opened...
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_TTY")
        .env_remove("AUTHPLUG_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // ...unless the case says so.
        .envs(env.iter().copied())
        .process_group(0);
    without_package_env(&mut command);
    let mut child = command.spawn().expect("bash runs scripts/demo");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("the demo did not finish in 240 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}\n--- stderr ---\n{}",
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader")
    );
    Demo {
        success: status.success(),
        output,
    }
}

fn path_with_cargo() -> std::ffi::OsString {
    let cargo_dir = Path::new(env!("CARGO"))
        .parent()
        .expect("cargo's directory")
        .to_path_buf();
    let mut dirs = vec![cargo_dir];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("a PATH")
}

/// The first URL on the line that has `label`.
fn url_after(output: &str, label: &str) -> String {
    let line = output
        .lines()
        .find(|line| line.contains(label))
        .unwrap_or_else(|| panic!("no line with {label:?}:\n{output}"));
    let start = line.find("http://").expect("a URL on the line");
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    url.trim_end_matches(':').to_owned()
}

/// What a person would check in the demo's output, whichever way it logged in.
fn assert_the_story(demo: &Demo, user: &str) {
    let output = &demo.output;
    assert!(demo.success, "the demo failed:\n{output}");
    assert!(
        output.contains(&format!("\"sub\": \"{user}\"")),
        "the claims are shown:\n{output}"
    );
    assert!(
        output.contains("HTTP 401: 401 Unauthorized: the token was revoked"),
        "{output}"
    );
    assert!(
        output.contains(&format!("HTTP 200: the same user ({user})")),
        "the 401 was healed:\n{output}"
    );
    assert!(output.contains("s ago (rejected), ok"), "{output}");
    // No token on the screen: nothing that looks like a whole JWT.
    for word in output.split_whitespace() {
        assert!(
            !(word.len() > 100 && word.matches('.').count() == 2),
            "a token reached the output: {word}"
        );
    }
}

fn assert_stopped(url: &str) {
    let address = url.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{url} still listens after the demo"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_logs_in_with_the_device_flow_where_no_browser_opens() {
    let demo = run_demo(&[], &[]);
    assert_the_story(&demo, "alice");
    let output = &demo.output;
    assert_eq!(
        output.matches("or visit http").count(),
        1,
        "one device login, no second one for the 401:\n{output}"
    );
    // The servers it started went with it.
    assert_stopped(&url_after(output, "issuer http"));
    assert_stopped(&url_after(output, "listening on http"));
}

#[test]
fn the_demo_uses_a_given_provider_and_the_browser_flow() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let browser = login_http_command(&[("DEV_IDP_USER", "bob")]);
    let demo = run_demo(
        &["--issuer", &idp.issuer, "--client-id", "demo"],
        &[("BROWSER", &browser)],
    );
    assert_the_story(&demo, "bob");
    let output = &demo.output;
    assert!(
        !output.contains("node scripts/dev-idp/idp.mjs"),
        "no IdP of its own:\n{output}"
    );
    assert_eq!(
        output
            .matches("if your browser did not open, visit")
            .count(),
        1,
        "one browser login:\n{output}"
    );
    assert!(
        !output.contains("or visit http"),
        "no device flow:\n{output}"
    );
}

#[test]
fn the_demo_with_ssh_ends_with_a_real_ssh_on_a_certificate() {
    let idp = DevIdp::start("{}").expect("the dev IdP starts");
    let browser = login_http_command(&[("DEV_IDP_USER", "bob")]);
    let demo = run_demo(
        &["--issuer", &idp.issuer, "--client-id", "demo", "--ssh"],
        &[("BROWSER", &browser)],
    );
    assert_the_story(&demo, "bob");
    let output = &demo.output;
    assert!(
        output.contains("hello from sshd: logged in as"),
        "ssh got in:\n{output}"
    );
    assert!(
        output.contains("Accepted certificate ID \"authplug-reference-ca:bob:1\""),
        "with the CA's certificate for bob:\n{output}"
    );
    assert!(
        output.contains("(plugin runs so far: 1)"),
        "the certificate agent ran `authplug token` once:\n{output}"
    );
    assert_eq!(
        output
            .matches("if your browser did not open, visit")
            .count(),
        1,
        "one login for the API and ssh:\n{output}"
    );
    // The servers it started went with it.
    assert_stopped(&url_after(output, "POST /certificate signs"));
    let sshd = output
        .lines()
        .find_map(|line| line.strip_prefix("sshd on "))
        .expect("the sshd line");
    assert_stopped(&format!("http://{sshd}"));
}
