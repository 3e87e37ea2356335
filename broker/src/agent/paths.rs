//! Where the agent's socket, lock, log and config live.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Overrides the socket path (also `--socket`).
pub const ENV_SOCKET: &str = "AUTHPLUG_SOCKET";

/// `$XDG_RUNTIME_DIR/authplug/agent.sock`, or `~/.authplug/agent.sock` when
/// there is no runtime directory.
pub fn default_socket() -> io::Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) if Path::new(&runtime).is_dir() => PathBuf::from(runtime).join("authplug"),
        _ => home()?.join(".authplug"),
    };
    Ok(dir.join("agent.sock"))
}

/// `$XDG_CONFIG_HOME/authplug/config.toml`, else `~/.config/authplug/config.toml`.
pub fn default_config() -> io::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(config) => PathBuf::from(config),
        None => home()?.join(".config"),
    };
    Ok(base.join("authplug").join("config.toml"))
}

fn home() -> io::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "neither XDG_RUNTIME_DIR nor HOME is set: give the socket path with --socket or AUTHPLUG_SOCKET",
            )
        })
}

/// The agent's log when it was started in the background.
pub fn log_file(socket: &Path) -> PathBuf {
    socket.with_extension("log")
}

pub(crate) fn lock_file(socket: &Path) -> PathBuf {
    socket.with_extension("lock")
}

/// Makes `dir` (and its parents) exist, owned by us and closed to everyone
/// else (0700). A directory owned by another user is refused.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let metadata = std::fs::metadata(dir)?;
    let uid = nix::unistd::geteuid().as_raw();
    if metadata.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to you (uid {uid}): choose another socket path with --socket",
                dir.display(),
                metadata.uid()
            ),
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
