//! The host's ends of the pipes, for the runtime.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::net::unix::pipe;

/// Sets O_NONBLOCK with one system call (`FIONBIO`).
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int from the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The host's read end of a pipe made here, already non-blocking, for the
/// runtime. The checks of `Receiver::from_owned_fd` (a FIFO? readable?
/// non-blocking?) are known answers and cost three system calls per pipe, a
/// noticeable share of a small plugin run.
pub(crate) fn receiver(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// The host's write end of a pipe made here, already non-blocking; see
/// [`receiver`].
pub(crate) fn sender(fd: OwnedFd) -> io::Result<pipe::Sender> {
    pipe::Sender::from_owned_fd_unchecked(fd)
}
