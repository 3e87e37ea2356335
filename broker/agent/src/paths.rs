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

/// The name of the program that runs the agent.
pub const AUTHPLUG_PROGRAM: &str = "authplug";

/// The `authplug` program, to start the agent from any of the programs that
/// may need one (`authplug` itself, `git-credential-authplug`, any helper
/// a tool wants under another name): this executable if it is `authplug`;
/// else the `authplug` installed beside it (they are installed together);
/// else the first on `PATH`.
pub fn authplug_program() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name() == Some(std::ffi::OsStr::new(AUTHPLUG_PROGRAM)) {
        return Ok(exe);
    }
    companion_program(AUTHPLUG_PROGRAM).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no `{AUTHPLUG_PROGRAM}` program beside {} or on PATH to start the agent with: install authplug (scripts/install), or start the agent yourself (`authplug agent`)",
                exe.display()
            ),
        )
    })
}

/// A program installed with this one (`authplug`, `authplug-oidc`): the
/// one beside this executable, else the first on `PATH`.
pub fn companion_program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.with_file_name(name);
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(beside)
        // Absolute entries only: the agent starts in `/`, where a relative
        // one would name another file.
        .chain(
            std::env::split_paths(&path)
                .filter(|dir| dir.is_absolute())
                .map(|dir| dir.join(name)),
        )
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The agent's log when it was started in the background.
pub fn log_file(socket: &Path) -> PathBuf {
    socket.with_extension("log")
}

pub(crate) fn lock_file(socket: &Path) -> PathBuf {
    socket.with_extension("lock")
}

/// Makes the socket's directory `dir` exist, owned by us; one owned by
/// another user is refused. What this call creates (`dir` and any missing
/// parents) is made 0700. An existing directory is left as it is: the user
/// chose it (say `--socket ~/agent.sock`, or `/tmp` as root), and the socket
/// itself is 0600 with every peer's uid checked. The exception is
/// authplug's own default directory, which is tightened to 0700.
pub fn socket_dir(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(ancestor).is_ok() {
            break;
        }
        missing.push(ancestor);
    }
    for created in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(created) {
            // The umask may have taken bits away; this one is ours to set.
            Ok(()) => std::fs::set_permissions(created, std::fs::Permissions::from_mode(0o700))?,
            // Made by someone else meanwhile (another agent starting):
            // checked below like any existing directory.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    let metadata = std::fs::metadata(dir)?;
    if !metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let uid = nix::unistd::geteuid().as_raw();
    if metadata.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to you (uid {uid}): choose another path for the socket",
                dir.display(),
                metadata.uid()
            ),
        ));
    }
    if metadata.mode() & 0o077 != 0 && is_default_dir(dir) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn is_default_dir(dir: &Path) -> bool {
    default_socket().is_ok_and(|socket| socket.parent() == Some(dir))
}
