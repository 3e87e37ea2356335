//! `authplug run` and `authplug check` as a person uses them: interrupted
//! with Ctrl-C or SIGTERM, piped into `head`, on a terminal where the plugin
//! prompts, and their `--help` and README examples typed in as written.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use authplug_tests::{authplug_binary, workspace};
use tokio::io::AsyncWriteExt;

fn authplug() -> PathBuf {
    authplug_binary()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `pid` (as a test wrote it to a file) is still running.
fn is_running(pid: &str) -> bool {
    pid.parse().is_ok_and(authplug_testkit::is_running)
}

async fn read_when_written(path: &Path) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} was never written", path.display());
}

fn send(signal: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// A plugin that never finishes, with a child, recording both pids; with
/// `ignore_term` it also ignores SIGTERM, so only the KILL stops it.
fn endless_plugin(dir: &Path, ignore_term: bool) -> String {
    format!(
        "{} sleep 1000 & echo $! > '{dir}/child'; echo $$ > '{dir}/pid'; wait",
        if ignore_term { "trap '' TERM;" } else { "" },
        dir = dir.display()
    )
}

#[tokio::test]
async fn a_signal_to_authplug_stops_the_plugin_before_it_exits() {
    for (subcommand, signal, ignore_term, code) in [
        ("run", "INT", false, 130),
        ("run", "TERM", true, 143),
        ("check", "INT", true, 130),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let script = endless_plugin(dir.path(), ignore_term);
        let authplug = tokio::process::Command::new(authplug())
            .args([subcommand, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let plugin = read_when_written(&dir.path().join("pid")).await;
        let child = read_when_written(&dir.path().join("child")).await;
        send(signal, authplug.id().unwrap());
        let output = tokio::time::timeout(Duration::from_secs(15), authplug.wait_with_output())
            .await
            .expect("authplug exits")
            .unwrap();
        let case = format!("{subcommand} SIG{signal}");
        // The group's members got their signal; the kernel may take a
        // moment to finish them after authplug has reaped the leader.
        let survivors = |pids: [&String; 2]| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let alive: Vec<String> = pids
                    .iter()
                    .filter(|pid| is_running(pid))
                    .map(|pid| pid.to_string())
                    .collect();
                if alive.is_empty() || Instant::now() > deadline {
                    return alive;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let alive = survivors([&plugin, &child]);
        // Whatever happened, leave nothing behind.
        for pid in [&plugin, &child] {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
        assert!(
            alive.is_empty(),
            "{case}: {alive:?} survived (plugin {plugin}, its child {child})"
        );
        assert_eq!(output.status.code(), Some(code), "{case}: {output:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "interrupted by SIG{signal}; the plugin was stopped"
            )),
            "{case}: {stderr}"
        );
    }
}

/// `authplug` with its stdout or stderr a pipe nobody reads any more, as
/// in `authplug check ... | head -1` once `head` has exited.
async fn with_closed(stream: &str, args: &[&str]) -> Output {
    let (writer, reader) = tokio::net::unix::pipe::pipe().unwrap();
    drop(reader);
    let writer = writer.into_blocking_fd().unwrap();
    let mut command = tokio::process::Command::new(authplug());
    command
        .args(args)
        .env("EXAMPLE_TOKEN", "tok")
        .stdin(Stdio::null());
    if stream == "stdout" {
        command.stdout(writer).stderr(Stdio::piped());
    } else {
        command.stderr(writer).stdout(Stdio::piped());
    }
    // Not `output()`: tokio's would pipe both streams again.
    command.spawn().unwrap().wait_with_output().await.unwrap()
}

#[tokio::test]
async fn a_closed_stdout_or_stderr_is_no_reason_to_panic() {
    let plugin = workspace().join("plugins/examples/shell/env-token.sh");
    let plugin = plugin.to_str().unwrap();

    // The report and the plugin's stderr lines go to stdout.
    let check = with_closed("stdout", &["check", "--", plugin]).await;
    assert!(!text(&check.stderr).contains("panicked"), "{check:?}");
    assert_eq!(check.status.code(), Some(0), "{check:?}");

    // The plugin's stderr lines go to authplug's stderr; the token still
    // reaches stdout.
    let run = with_closed("stderr", &["run", "--", plugin]).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(run.stdout, b"tok\n");
}

/// Runs `shell_line` under `script`, which gives it a pseudo-terminal as
/// its controlling terminal (it is the terminal's foreground), with
/// `typed` as what the user types.
async fn on_a_terminal(shell_line: &str, typed: &str) -> Output {
    let mut script = tokio::process::Command::new("script")
        .args(["-qec", shell_line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs");
    let mut keyboard = script.stdin.take().unwrap();
    keyboard.write_all(typed.as_bytes()).await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), script.wait_with_output())
        .await
        .expect("the session ends");
    drop(keyboard);
    output.unwrap()
}

#[tokio::test]
async fn on_a_terminal_the_plugin_can_prompt_and_gets_the_terminal_back_after() {
    // The plugin reads a line from /dev/tty. In its own process group it
    // would be in the terminal's background and stopped by SIGTTIN (here:
    // until the 10 s timeout); lent the terminal, it reads what was typed.
    // Then the shell reads the next line: it has the terminal back.
    let line = format!(
        "{} run --timeout 10 -- sh -c 'IFS= read -r typed </dev/tty && echo \"got-$typed\"'; \
         IFS= read -r after </dev/tty && echo \"after-$after\"",
        authplug().display()
    );
    let output = on_a_terminal(&line, "hello\nworld\n").await;
    let screen = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(screen.contains("got-hello"), "{screen}");
    assert!(screen.contains("after-world"), "{screen}");
}

#[tokio::test]
async fn on_a_terminal_a_plugin_that_cannot_start_leaves_the_terminal_to_the_shell() {
    // The terminal is handed over in the child, before its exec: when the
    // exec fails, the host takes it back from the group that never ran.
    let line = format!(
        "{} run -- /nonexistent/authplug-plugin; \
         IFS= read -r after </dev/tty && echo \"after-$after\"",
        authplug().display()
    );
    let output = on_a_terminal(&line, "world\n").await;
    let screen = text(&output.stdout);
    assert!(screen.contains("could not start plugin"), "{screen}");
    assert!(screen.contains("after-world"), "{screen}");
}

/// The commands listed after `Examples:` in `--help`.
fn help_examples(subcommand: &str) -> Vec<String> {
    let help = std::process::Command::new(authplug())
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    let help = text(&help.stdout);
    let examples = &help[help.find("Examples:").expect("an Examples section")..];
    examples
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The command lines of the README's block that shows the two commands.
fn readme_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let from = readme.find("## The protocol in brief").unwrap();
    let block = &readme[from..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap_or(line).trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

#[tokio::test]
async fn the_help_and_readme_examples_work_as_written() {
    let examples: Vec<String> = ["run", "check"]
        .into_iter()
        .flat_map(help_examples)
        .chain(readme_examples())
        .collect();
    assert!(examples.len() >= 6, "{examples:?}");
    // Typed in a fresh directory with the repository's plugins in it, with
    // `authplug` on PATH and none of the example's variables set.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace().join("plugins"), dir.path().join("plugins")).unwrap();
    let bin = authplug().parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for example in examples {
        let output = tokio::process::Command::new("sh")
            .args(["-c", &example])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("EXAMPLE_TOKEN")
            .env_remove("EXAMPLE_TOKEN_FILE")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "`{example}` failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
}

#[tokio::test]
async fn authplug_run_reads_state_files_up_to_the_limit_and_from_pipes() {
    let limit = authplug_protocol::STATE_LIMIT;
    let dir = tempfile::tempdir().unwrap();
    let (state_in, state_out) = (dir.path().join("in"), dir.path().join("out"));
    let copy_state = ["--", "sh", "-c", "cat >&3; echo tok"];
    let run = |state_in: &Path| {
        let mut command = tokio::process::Command::new(authplug());
        command
            .arg("run")
            .arg("--state-in")
            .arg(state_in)
            .arg("--state-out")
            .arg(&state_out)
            .args(copy_state)
            .stdin(Stdio::null());
        command
    };

    std::fs::write(&state_in, vec![b's'; limit]).unwrap();
    let exact = run(&state_in).output().await.unwrap();
    assert!(exact.status.success(), "{}", text(&exact.stderr));
    assert_eq!(std::fs::read(&state_out).unwrap().len(), limit);

    std::fs::write(&state_in, vec![b's'; limit + 1]).unwrap();
    let over = run(&state_in).output().await.unwrap();
    assert!(!over.status.success());
    assert!(
        text(&over.stderr).contains("larger than the protocol's state limit"),
        "{}",
        text(&over.stderr)
    );

    // A pipe has no size to go by: `--state-in /dev/stdin`.
    let mut piped = run(Path::new("/dev/stdin"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = piped.stdin.take().unwrap();
    stdin.write_all(b"from a pipe").await.unwrap();
    drop(stdin);
    let piped = piped.wait_with_output().await.unwrap();
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(std::fs::read(&state_out).unwrap(), b"from a pipe");
}

/// `authplug check -- sh -c PLUGIN`: its exit code and its report.
async fn check_report(plugin: &str) -> (Option<i32>, String) {
    let check = tokio::process::Command::new(authplug())
        .args(["check", "--", "sh", "-c", plugin])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("authplug check runs");
    (check.status.code(), text(&check.stdout))
}

#[tokio::test]
async fn authplug_run_and_check_keep_the_state_a_failed_run_hands_back() {
    let dir = tempfile::tempdir().unwrap();
    let (state_in, state_out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::write(&state_in, b"spent").unwrap();
    std::fs::write(&state_out, b"spent").unwrap();
    // Rotates its state, then fails asking the host to keep it (rule 4).
    let plugin = r#"cat >/dev/null; printf rotated >&3; echo "no token this time" >&2; exit "$AUTHPLUG_KEEP_STATE_EXIT""#;
    let run = tokio::process::Command::new(authplug())
        .arg("run")
        .arg("--state-in")
        .arg(&state_in)
        .arg("--state-out")
        .arg(&state_out)
        .args(["--", "sh", "-c", plugin])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(run.stdout.is_empty());
    assert!(stderr.contains("updated state"), "{stderr}");
    assert!(stderr.contains("the new state was written to"), "{stderr}");
    assert_eq!(std::fs::read(&state_out).unwrap(), b"rotated");

    // Any other failure leaves --state-out alone.
    std::fs::write(&state_out, b"spent").unwrap();
    let other = tokio::process::Command::new(authplug())
        .arg("run")
        .arg("--state-out")
        .arg(&state_out)
        .args(["--", "sh", "-c", "printf garbage >&3; exit 3"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(other.status.code(), Some(1));
    assert_eq!(std::fs::read(&state_out).unwrap(), b"spent");

    let (code, report) = check_report(plugin).await;
    // Failing and keeping a state is the plugin's right (rule 4): not a
    // violation, but nothing more could be checked.
    assert_eq!(code, Some(3), "{report}");
    assert!(report.contains("AUTHPLUG_KEEP_STATE_EXIT=75"), "{report}");
    assert!(
        report.contains("asking the host to keep it (AUTHPLUG_KEEP_STATE_EXIT, rule 4)"),
        "{report}"
    );
}

#[tokio::test]
async fn authplug_check_reports_what_a_plugin_does_on_logout() {
    let plugin = r#"if [ "$AUTHPLUG_REASON" = logout ]; then
  [ "$AUTHPLUG_INTERACTIVE" = 0 ] || exit 9
  echo "revoked $(cat)" >&2; exit 0
fi
state=$(cat); printf '%s' "${state}x" >&3; echo "tok$state""#;
    let (code, report) = check_report(plugin).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains("Logout: the last state on stdin, AUTHPLUG_REASON=logout")
            && report.contains("| revoked xxxx")
            && report.contains("ok    logout: exit code 0 and nothing printed"),
        "{report}"
    );
}
