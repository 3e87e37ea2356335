//! A terminal that only tells on whoever writes to it: a pseudo-terminal
//! made the controlling terminal of a run that may not interact, in a
//! session of its own (`RunOptions::session_terminal`). Such a run must
//! never prompt (PROTOCOL.md rule 1); one that writes a prompt to
//! `/dev/tty` leaves it here, and one that reads finds the end of input
//! instead of waiting for a person who was never asked.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{tcflush, tcgetattr, tcsetattr, FlushArg, LocalFlags, SetArg};

/// How many reads of the terminal find the end of input: enough for a
/// plugin that asks again a few times before it gives up.
const ENDS_OF_INPUT: usize = 16;

/// The pseudo-terminal: the side read here, the plugin's side (kept open,
/// so the terminal outlives each run) and its path.
pub struct TerminalTrap {
    master: File,
    slave: OwnedFd,
    path: PathBuf,
}

impl TerminalTrap {
    /// A new pseudo-terminal that does not echo, its input ends of input.
    pub fn set() -> io::Result<TerminalTrap> {
        let pty = nix::pty::openpty(None, None)?;
        let path = nix::unistd::ttyname(&pty.slave)?;
        // Without echo, whatever the master reads is the plugin's own.
        let mut modes = tcgetattr(&pty.slave)?;
        modes
            .local_flags
            .remove(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK | LocalFlags::ECHONL);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &modes)?;
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let mut trap = TerminalTrap {
            master: File::from(pty.master),
            slave: pty.slave,
            path,
        };
        trap.refill()?;
        Ok(trap)
    }

    /// The terminal's path, for `RunOptions::session_terminal`.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// What runs wrote to the terminal since the last look, if anything;
    /// the input is made ready for the next run.
    pub fn written(&mut self) -> Option<String> {
        let mut written = Vec::new();
        let mut chunk = [0u8; 1024];
        while written.len() < 64 * 1024 {
            match self.master.read(&mut chunk) {
                Ok(0) => break,
                Ok(count) => written.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: nothing more; EIO: no one has the other side.
                Err(_) => break,
            }
        }
        let _ = self.refill();
        (!written.is_empty()).then(|| String::from_utf8_lossy(&written).into_owned())
    }

    /// Ends of input (the terminal's EOF character, at the start of a
    /// line), for a run that reads.
    fn refill(&mut self) -> io::Result<()> {
        // What an earlier run left unread goes first.
        let _ = tcflush(&self.slave, FlushArg::TCIFLUSH);
        self.master.write_all(&[0x04; ENDS_OF_INPUT])
    }
}
