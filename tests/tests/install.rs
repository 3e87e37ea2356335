//! `scripts/install` into a temporary PREFIX, then the README's commands
//! with nothing but that PREFIX's bin (and the system's) on PATH: the
//! binaries are there and run, the completions parse in their shells, the
//! manual pages render, systemd accepts the user units. (It builds with `--debug` in the workspace's
//! target directory, so that the test reuses the build it runs in; a user's
//! install is the same script, optimised.)

use std::path::Path;
use std::process::{Command, Output};

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn installed(prefix: &Path, program: &str) -> Command {
    let mut command = Command::new(program);
    let path = format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        prefix.join("bin").display()
    );
    command
        .current_dir(authplug_tests::workspace())
        .env("PATH", path)
        .env_remove("AUTHPLUG_SOCKET")
        .env_remove("AUTHPLUG_CONFIG");
    command
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn install_puts_every_program_completion_and_manual_page_in_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let mut install = Command::new(authplug_tests::workspace().join("scripts/install"));
    install
        .arg("--debug")
        .env("PREFIX", &prefix)
        .env("CARGO_TARGET_DIR", authplug_tests::target_dir());
    authplug_tests::without_package_env(&mut install);
    let said = ok(
        &install.output().expect("scripts/install runs"),
        "scripts/install",
    );
    assert!(said.contains("is not on your PATH"), "{said}");

    for program in [
        "authplug",
        "git-credential-authplug",
        "authplug-oidc",
        "authplug-exchange",
    ] {
        let version = installed(&prefix, program)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            ok(&version, program).contains(program),
            "{program} --version"
        );
    }
    // The README's first commands, from the installed binary.
    let run = installed(&prefix, "authplug")
        .args(["run", "--", "plugins/examples/shell/env-token.sh"])
        .env("EXAMPLE_TOKEN", "hello")
        .output()
        .unwrap();
    assert_eq!(ok(&run, "authplug run"), "hello\n");
    let check = installed(&prefix, "authplug")
        .args(["check", "--", "plugins/examples/shell/env-token.sh"])
        .env("EXAMPLE_TOKEN", "hello")
        .output()
        .unwrap();
    ok(&check, "authplug check");
    // git finds the helper on PATH, as `credential.helper = "authplug ..."`
    // makes it look for it.
    let helper = installed(&prefix, "git")
        .args(["credential-authplug", "--version"])
        .output()
        .unwrap();
    ok(&helper, "git credential-authplug");

    let share = prefix.join("share");
    let bash = share.join("bash-completion/completions/authplug");
    let text = std::fs::read_to_string(&bash).unwrap();
    for subcommand in ["token", "exec", "kubectl", "logout", "completions"] {
        assert!(
            text.contains(subcommand),
            "{subcommand} in the bash completions"
        );
    }
    ok(
        &Command::new("bash").arg("-n").arg(&bash).output().unwrap(),
        "bash -n",
    );
    let zsh = share.join("zsh/site-functions/_authplug");
    assert!(std::fs::read_to_string(&zsh)
        .unwrap()
        .starts_with("#compdef authplug"));
    if have("zsh") {
        ok(
            &Command::new("zsh").arg("-n").arg(&zsh).output().unwrap(),
            "zsh -n",
        );
    }
    let fish = share.join("fish/vendor_completions.d/authplug.fish");
    assert!(std::fs::read_to_string(&fish)
        .unwrap()
        .contains("complete -c authplug"));
    if have("fish") {
        ok(
            &Command::new("fish")
                .arg("--no-execute")
                .arg(&fish)
                .output()
                .unwrap(),
            "fish -n",
        );
    }
    // The systemd user units, with this install's binary, as systemd
    // itself reads them.
    let units = share.join("systemd/user");
    let service = std::fs::read_to_string(units.join("authplug.service")).unwrap();
    let exec_start = format!("ExecStart={} agent", prefix.join("bin/authplug").display());
    assert!(service.contains(&exec_start), "{service}");
    if have("systemd-analyze") {
        let verify = Command::new("systemd-analyze")
            .args([
                "verify",
                "--man=no",
                "./authplug.socket",
                "./authplug.service",
            ])
            .current_dir(&units)
            .output()
            .unwrap();
        ok(&verify, "systemd-analyze verify");
    }
    let man = share.join("man/man1");
    for page in [
        "authplug.1",
        "authplug-token.1",
        "authplug-kubectl.1",
        "authplug-logout.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page} is a manual page");
    }
    if have("man") {
        let shown = Command::new("man")
            .arg("-l")
            .arg(man.join("authplug-logout.1"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(ok(&shown, "man -l").contains("revokes"), "the page's text");
    }
}
