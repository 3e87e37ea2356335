//! Socket activation (systemd's `sd_listen_fds(3)` protocol, which launchd
//! adapters and `systemd-socket-activate` speak too): the supervisor binds
//! the agent's socket and starts the agent on the first connection, with
//! the listening socket as fd 3, `LISTEN_FDS=1` and `LISTEN_PID` set to the
//! agent's pid.
//!
//! What it is not: it parses no unit file and talks to no systemd (no
//! `sd_notify`); one socket, the agent's, is all it takes.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// The first descriptor a supervisor passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// A passed socket the agent cannot serve on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_FDS` is not one socket.
    #[error("the supervisor passed {0} sockets (LISTEN_FDS); the agent serves one: give its socket unit a single ListenStream=")]
    NotOne(String),
    /// fd 3 is not a listening unix stream socket.
    #[error("the supervisor's fd 3 is not a listening unix socket ({0}): the socket unit needs ListenStream=%t/authplug/agent.sock, not a TCP port or a datagram socket")]
    NotAUnixListener(String),
}

/// The socket a supervisor passed this process, with its path, if it
/// passed one. Clears `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`, so
/// that no plugin believes it was activated, and marks the socket
/// close-on-exec, so that no plugin holds it. Call it before any thread
/// starts (it changes the environment) and before anything opens a file
/// (which could take fd 3).
pub fn take_listener() -> Result<Option<(UnixListener, PathBuf)>, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    // For another process (a parent's, inherited): not ours.
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let Some(fds) = fds.filter(|_| ours) else {
        return Ok(None);
    };
    if fds.trim() != "1" {
        return Err(ActivationError::NotOne(fds));
    }
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};
    // SAFETY: the supervisor says fd 3 is ours (LISTEN_PID, LISTEN_FDS);
    // it is only borrowed for the checks below, while nothing can close it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(FIRST_FD) };
    let not = |what: String| ActivationError::NotAUnixListener(what);
    let stream = getsockopt(&fd, sockopt::SockType).map_err(|e| not(e.to_string()))?;
    let listening = getsockopt(&fd, sockopt::AcceptConn).map_err(|e| not(e.to_string()))?;
    let address: UnixAddr = getsockname(FIRST_FD).map_err(|e| not(e.to_string()))?;
    let Some(path) = address.path().map(PathBuf::from) else {
        return Err(not("an abstract or unnamed socket".into()));
    };
    if stream != SockType::Stream || !listening {
        return Err(not(format!("{stream:?}, listening: {listening}")));
    }
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| not(e.to_string()))?;
    // SAFETY: the supervisor handed us fd 3 for this use, it was checked
    // above to be a listening unix socket, and nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(FIRST_FD) };
    listener
        .set_nonblocking(true)
        .map_err(|e| not(e.to_string()))?;
    Ok(Some((listener, path)))
}
