//! The real git for the tests, with a home of its own whose credential
//! helper is `git-credential-authplug` (found on `PATH`) for one profile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// git with a home of its own: the helper configured there and found on
/// `PATH`, the agent's socket in `AUTHPLUG_SOCKET`.
pub struct Git {
    home: PathBuf,
    path: std::ffi::OsString,
    socket: PathBuf,
}

impl Git {
    /// A home in `dir` whose git asks `git-credential-authplug --profile
    /// PROFILE` (and no helper from elsewhere), with the agent at `socket`.
    pub fn new(dir: &Path, socket: &Path, profile: &str) -> Git {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        // An empty helper first: no helper from elsewhere answers.
        std::fs::write(
            home.join(".gitconfig"),
            format!("[credential]\n\thelper =\n\thelper = authplug --profile {profile}\n[user]\n\tname = Alice\n\temail = alice@example.com\n[init]\n\tdefaultBranch = main\n"),
        )
        .unwrap();
        let helper = crate::workspace_binary("authplug-agent", "git-credential-authplug");
        let mut path = helper.parent().expect("a directory").as_os_str().to_owned();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        Git {
            home,
            path,
            socket: socket.to_owned(),
        }
    }

    /// `git ARGS` in `dir`, stdin empty, with extra environment.
    pub fn run(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.run_with_input(dir, args, env, b"")
    }

    /// `git ARGS` in `dir`, with `input` on stdin.
    pub fn run_with_input(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        input: &[u8],
    ) -> Output {
        let mut command = std::process::Command::new("git");
        command
            .args(args)
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("PATH", &self.path)
            .env("AUTHPLUG_SOCKET", &self.socket)
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("git runs");
        if let Some(mut stdin) = child.stdin.take() {
            // git may not read it all (or at all): a broken pipe is fine.
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().expect("git ends")
    }

    /// `git ARGS` in `dir`, which must succeed; its output.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let output = self.run(dir, args, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "git {args:?} failed: {text}");
        text
    }
}
