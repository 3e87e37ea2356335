//! A command on a real pseudo-terminal, as a user at a terminal runs it:
//! util-linux's `script` gives it a new session whose controlling
//! terminal is the pty, so `/dev/tty` and the foreground group are real.
//! What it writes is read as it comes; lines are typed into it.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A command running on its own terminal; killed when dropped.
pub struct OnTerminal {
    child: Child,
    keyboard: Option<ChildStdin>,
    screen: Arc<Mutex<String>>,
}

impl OnTerminal {
    /// Runs the shell command line `command` (`/bin/sh -c`) on a new pty,
    /// with `env` added to this process's environment.
    pub fn start(command: &str, env: &[(&str, &str)]) -> OnTerminal {
        let mut child = Command::new("script")
            // -q: no banner; -f: flush as it comes; -e: its exit status;
            // the typescript goes nowhere.
            .args(["-q", "-f", "-e", "-c", command, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("util-linux `script` runs (scripts/setup installs it)");
        let keyboard = child.stdin.take();
        let mut output = child.stdout.take().expect("piped stdout");
        let screen = Arc::new(Mutex::new(String::new()));
        let written = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(read) = output.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&chunk[..read]);
                written.lock().expect("not poisoned").push_str(&text);
            }
        });
        OnTerminal {
            child,
            keyboard,
            screen,
        }
    }

    /// All it has written so far, line ends as `\n`.
    pub fn screen(&self) -> String {
        self.screen
            .lock()
            .expect("not poisoned")
            .replace("\r\n", "\n")
    }

    /// Waits until what it wrote contains `needle`; panics with the screen
    /// after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not show on the terminal within {timeout:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        let keyboard = self.keyboard.as_mut().expect("the terminal is open");
        keyboard
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| keyboard.flush())
            .expect("type on the terminal");
    }

    /// Waits for the command to exit; panics with the screen after
    /// `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for script") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the command did not exit within {timeout:?}; the terminal shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
