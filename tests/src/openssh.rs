//! Real OpenSSH for the SSH certificate tests: an `sshd` on 127.0.0.1 that
//! trusts one user CA, an `ssh-agent`, and the `ssh` client, each in a
//! temporary directory that goes with them.
//!
//! Debian's `openssh-server` and `openssh-client` (scripts/setup installs
//! them). sshd runs in the foreground (`-D -e`) with its own config, a host
//! key made for it, no PAM, no passwords and no authorized keys: a
//! certificate signed by the CA, naming a principal listed for the account,
//! is the only way in.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's sshd lives; it must be started by its absolute path (it
/// re-executes itself).
pub const SSHD: &str = "/usr/sbin/sshd";

/// The local account the tests log in as: the one running them.
pub fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A running sshd; killed when dropped.
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its log (`-e`: everything it says, at LogLevel VERBOSE).
    pub log: PathBuf,
    /// A `known_hosts` naming its host key, for `UserKnownHostsFile`.
    pub known_hosts: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd trusting `ca_public_key` (an OpenSSH public key line),
    /// letting the current user in with a certificate for one of
    /// `principals`.
    pub fn start(ca_public_key: &str, principals: &[&str]) -> Result<Sshd, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!(
                "{SSHD} is missing: run scripts/setup (it installs openssh-server)"
            ));
        }
        // sshd refuses to start without its privilege-separation directory,
        // which Debian's package makes only at boot.
        if !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd")
                .map_err(|e| format!("cannot make /run/sshd for sshd: {e}"))?;
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let host_key = dir.path().join("host_ed25519");
        let keygen = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "authplug-test-host",
                "-f",
            ])
            .arg(&host_key)
            .output()
            .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
        if !keygen.status.success() {
            return Err(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&keygen.stderr)
            ));
        }
        let host_public = std::fs::read_to_string(dir.path().join("host_ed25519.pub"))
            .map_err(|e| e.to_string())?;
        let ca_file = dir.path().join("user_ca.pub");
        std::fs::write(&ca_file, format!("{}\n", ca_public_key.trim()))
            .map_err(|e| e.to_string())?;
        let principals_dir = dir.path().join("principals");
        std::fs::create_dir(&principals_dir).map_err(|e| e.to_string())?;
        std::fs::write(
            principals_dir.join(current_user()),
            principals
                .iter()
                .map(|p| format!("{p}\n"))
                .collect::<String>(),
        )
        .map_err(|e| e.to_string())?;
        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host_key}\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthorizedKeysFile none\n\
                 TrustedUserCAKeys {ca}\n\
                 AuthorizedPrincipalsFile {principals}/%u\n\
                 LogLevel VERBOSE\n\
                 MaxStartups 100:30:200\n",
                host_key = host_key.display(),
                ca = ca_file.display(),
                principals = principals_dir.display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = dir.path().join("sshd.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start sshd: {e}"))?;
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_public}"))
            .map_err(|e| e.to_string())?;
        let mut sshd = Sshd {
            port,
            log,
            known_hosts,
            child,
            _dir: dir,
        };
        sshd.wait_listening()?;
        Ok(sshd)
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("sshd exited ({status}): {}", self.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd did not listen within 10 s: {}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything sshd logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh` into this sshd as the current user, running `remote_command`,
    /// with `ssh_config` (options and `Match` blocks, as a user's
    /// ~/.ssh/config would hold) and no agent unless the config names one.
    pub fn ssh(&self, ssh_config: &str, remote_command: &str) -> Output {
        self.ssh_with(ssh_config, &[], remote_command)
    }

    /// [`Sshd::ssh`] with more `ssh` arguments (`-i KEY`, say).
    pub fn ssh_with(&self, ssh_config: &str, extra: &[&str], remote_command: &str) -> Output {
        let config = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(config.path(), ssh_config).expect("the ssh config is written");
        Command::new("ssh")
            .arg("-F")
            .arg(config.path())
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "PasswordAuthentication=no", "-o", "LogLevel=ERROR"])
            .args(["-o", "IdentityFile=none", "-o", "ConnectTimeout=10"])
            .args(extra)
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{}@127.0.0.1", current_user()))
            .arg(remote_command)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `ssh-agent -D`; killed when dropped.
pub struct SshAgent {
    /// Its socket, for `SSH_AUTH_SOCK` or `IdentityAgent`.
    pub socket: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SshAgent {
    /// Starts an empty ssh-agent on a socket of its own.
    pub fn start() -> Result<SshAgent, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start ssh-agent: {e}"))?;
        // It prints its environment lines once the socket is bound.
        if let Some(stdout) = child.stdout.take() {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("ssh-agent did not bind its socket within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SshAgent {
            socket,
            child,
            _dir: dir,
        })
    }

    /// `ssh-add -L`: the public keys and certificates it holds, one a line.
    pub fn list(&self) -> String {
        let output = Command::new("ssh-add")
            .arg("-L")
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}
