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

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::termios::{
    tcflush, tcgetattr, tcsetattr, FlushArg, LocalFlags, SetArg, SpecialCharacterIndices, Termios,
};

/// How many reads of the terminal find the end of input: enough for a
/// plugin that asks again a few times before it gives up.
const ENDS_OF_INPUT: usize = 16;

/// How much of what runs write is kept for the report; the rest is read
/// and dropped, so that it is not blamed on the next run.
const KEPT: usize = 4096;

/// The pseudo-terminal: the side read here, the plugin's side (kept open,
/// so the terminal outlives each run), its path, and the settings each run
/// starts from (a run may change them: `stty`).
pub struct TerminalTrap {
    master: File,
    slave: OwnedFd,
    path: PathBuf,
    modes: Termios,
}

impl TerminalTrap {
    /// A new pseudo-terminal that does not echo, its input ends of input.
    /// Only where the host can make it a run's terminal (Linux with glibc,
    /// `RunOptions::session_terminal`).
    pub fn set() -> io::Result<TerminalTrap> {
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the host gives a run a terminal of its own only on Linux with glibc",
            ));
        }
        let pty = nix::pty::openpty(None, None)?;
        // Ours only: never inherited by a plugin but as its terminal.
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        let path = nix::unistd::ttyname(&pty.slave)?;
        // Without echo, whatever the master reads is the plugin's own.
        let mut modes = tcgetattr(&pty.slave)?;
        modes
            .local_flags
            .remove(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK | LocalFlags::ECHONL);
        modes.local_flags.insert(LocalFlags::ICANON);
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let mut trap = TerminalTrap {
            master: File::from(pty.master),
            slave: pty.slave,
            path,
            modes,
        };
        trap.refill()?;
        Ok(trap)
    }

    /// The terminal's path, for `RunOptions::session_terminal`.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// What runs wrote to the terminal since the last look (its first
    /// [`KEPT`] bytes), if anything; the terminal is made ready for the
    /// next run.
    pub fn written(&mut self) -> Option<String> {
        let mut written = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match self.master.read(&mut chunk) {
                Ok(0) => break,
                Ok(count) => {
                    let room = KEPT.saturating_sub(written.len()).min(count);
                    written.extend_from_slice(&chunk[..room]);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: nothing more; EIO: no one has the other side.
                Err(_) => break,
            }
        }
        let _ = self.refill();
        (!written.is_empty()).then(|| String::from_utf8_lossy(&written).into_owned())
    }

    /// The settings a run starts from, and ends of input (the terminal's
    /// EOF character, at the start of a line) for a run that reads.
    fn refill(&mut self) -> io::Result<()> {
        tcsetattr(&self.slave, SetArg::TCSANOW, &self.modes)?;
        // What an earlier run left unread goes first.
        tcflush(&self.slave, FlushArg::TCIFLUSH)?;
        let eof = self.modes.control_chars[SpecialCharacterIndices::VEOF as usize];
        self.master.write_all(&[eof; ENDS_OF_INPUT])
    }
}
