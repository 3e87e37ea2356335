//! A real forward proxy for the tests: Debian's `tinyproxy` on 127.0.0.1,
//! with a configuration and a log of its own, stopped when dropped. What a
//! corporate network puts between a laptop and its provider.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tinyproxy.
pub struct ForwardProxy {
    /// `http://127.0.0.1:PORT`, for `HTTP_PROXY` and `HTTPS_PROXY`.
    pub url: String,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ForwardProxy {
    /// Starts tinyproxy in the foreground on a free port of 127.0.0.1,
    /// serving only 127.0.0.1, and waits (up to 10 s) until it accepts
    /// connections.
    pub fn start() -> Result<ForwardProxy, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 20\nLogLevel Info\nLogFile \"{}\"\n",
                log.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut child = Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start tinyproxy: {e} (scripts/setup installs Debian's tinyproxy)")
            })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "tinyproxy did not listen on 127.0.0.1:{port}; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(ForwardProxy {
            url: format!("http://127.0.0.1:{port}"),
            log,
            child,
            _dir: dir,
        })
    }

    /// The requests it forwarded so far, as its log has them
    /// (`GET http://host:port/path HTTP/1.1`, `CONNECT host:443 ...`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                line.split_once("Request (file descriptor ")
                    .map(|(_, rest)| rest)
            })
            .filter_map(|rest| {
                rest.split_once("): ")
                    .map(|(_, request)| request.to_owned())
            })
            .collect()
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
