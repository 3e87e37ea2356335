//! Starting the dev IdP (scripts/dev-idp/idp.mjs, npm oidc-provider) from Rust tests.
//!
//! The server binds 127.0.0.1 on a free port, prints `ISSUER <url>` when ready and
//! exits when its stdin closes, so dropping [`DevIdp`] (which also kills it) never
//! leaves a server behind.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// scripts/dev-idp.
pub fn dev_idp_dir() -> PathBuf {
    crate::workspace().join("scripts").join("dev-idp")
}

/// Makes sure scripts/dev-idp/node_modules exists by running the npm part of
/// scripts/setup; errors with "run scripts/setup" if that fails.
pub fn ensure_npm_deps() -> Result<(), String> {
    if dev_idp_dir()
        .join("node_modules")
        .join("oidc-provider")
        .is_dir()
    {
        return Ok(());
    }
    let status = Command::new(crate::workspace().join("scripts").join("setup"))
        .env("AUTHPLUG_SETUP_NPM_ONLY", "1")
        .status()
        .map_err(|e| format!("cannot run scripts/setup ({e}); run scripts/setup"))?;
    if !status.success() {
        return Err(format!(
            "scripts/dev-idp/node_modules is missing and `scripts/setup` (npm part) failed ({status}); run scripts/setup"
        ));
    }
    Ok(())
}

/// A running Node server from scripts/dev-idp that printed `ISSUER <url>`.
pub struct NodeServer {
    /// The issuer URL, `http://127.0.0.1:PORT`.
    pub issuer: String,
    child: Child,
    // Held open: the server exits when its stdin closes.
    _stdin: Option<ChildStdin>,
}

impl NodeServer {
    /// Starts `node scripts/dev-idp/<script> <args>` and waits (up to 20 s) for its ready line.
    pub fn start(script: &str, args: &[String]) -> Result<Self, String> {
        ensure_npm_deps()?;
        let mut child = Command::new("node")
            .arg(dev_idp_dir().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start node {script}: {e} (is Node installed?)"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = etx.send(String::from_utf8_lossy(&chunk[..n]).into_owned());
                    }
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        match line.trim().strip_prefix("ISSUER ") {
            Some(issuer) => Ok(Self {
                issuer: issuer.to_string(),
                child,
                _stdin: stdin,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let err: String = erx.try_iter().collect();
                Err(format!(
                    "{script} did not start (first stdout line {line:?}); its stderr:\n{err}"
                ))
            }
        }
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev IdP (oidc-provider 9.13.3). See scripts/dev-idp/README.md for the config schema.
pub struct DevIdp {
    /// The issuer URL, `http://127.0.0.1:PORT`.
    pub issuer: String,
    _server: NodeServer,
}

impl DevIdp {
    /// Starts the dev IdP with a JSON config (`"{}"` for the defaults).
    pub fn start(config_json: &str) -> Result<Self, String> {
        let server = NodeServer::start("idp.mjs", &[config_json.to_string()])?;
        Ok(Self {
            issuer: server.issuer.clone(),
            _server: server,
        })
    }

    /// URL of an admin endpoint, e.g. `revoke-account`; POST form data to it
    /// (`account=alice`, or `token=RT` for `revoke-refresh-token`).
    pub fn admin_url(&self, endpoint: &str) -> String {
        format!("{}/_admin/{endpoint}", self.issuer)
    }
}

/// `--browser-command` for the HTTP form-walking login driver, with env knobs
/// (e.g. `&[("DEV_IDP_DENY", "1")]`); the plugin appends the URL.
pub fn login_http_command(env: &[(&str, &str)]) -> String {
    driver_command("login-http.mjs", env)
}

/// `--browser-command` for the real headless chromium driver.
pub fn login_chromium_command(env: &[(&str, &str)]) -> String {
    driver_command("login-chromium.mjs", env)
}

/// Command approving (or with `DEV_IDP_DENY=1` denying) a device code; append
/// the verification_uri_complete.
pub fn device_approve_command(env: &[(&str, &str)]) -> String {
    format!("{} --device", login_http_command(env))
}

fn driver_command(script: &str, env: &[(&str, &str)]) -> String {
    let mut words = vec!["env".to_string()];
    words.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    words.push("node".to_string());
    words.push(dev_idp_dir().join(script).display().to_string());
    shell_join(&words)
}

fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
