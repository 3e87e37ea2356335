//! The controlling terminal, lent to the plugin's process group for a run
//! and taken back (rule 7).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::signal::{killpg, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// The controlling terminal, lent to the plugin's process group for a run
/// (`RunOptions::foreground_terminal`) and taken back when dropped. Only a
/// host in the terminal's foreground group lends it: a host in the
/// background must not take the terminal from whoever has it.
pub(crate) struct Terminal {
    pub(super) tty: OwnedFd,
    pub(super) host_group: Pid,
    pub(super) lent_to: Option<Pid>,
}

impl Terminal {
    /// The controlling terminal, if there is one and this process is in
    /// its foreground group.
    pub(crate) fn if_foreground() -> Option<Terminal> {
        use nix::fcntl::{open, OFlag};
        let tty = open(
            "/dev/tty",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        let host_group = nix::unistd::getpgrp();
        (nix::unistd::tcgetpgrp(&tty).ok()? == host_group).then_some(Terminal {
            tty,
            host_group,
            lent_to: None,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.tty.as_fd()
    }

    /// Records that the plugin's group `pgid` has the terminal now.
    pub(crate) fn lent_to(&mut self, pgid: Pid) {
        self.lent_to = Some(pgid);
    }

    /// `tcsetpgrp` from a process that may be in the background, which
    /// would otherwise get SIGTTOU (and stop) instead.
    pub(super) fn set_foreground(tty: BorrowedFd<'_>, group: Pid) {
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let Ok(previous) = ttou.thread_swap_mask(SigmaskHow::SIG_BLOCK) else {
            return;
        };
        let _ = nix::unistd::tcsetpgrp(tty, group);
        let _ = previous.thread_set_mask();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let Ok(foreground) = nix::unistd::tcgetpgrp(&self.tty) else {
            return;
        };
        // Back from the plugin's group, or from a group that is gone (the
        // spawn's child takes the terminal before its exec, which may then
        // fail); never from a job the user has moved to the foreground since.
        let gone = killpg(foreground, None) == Err(nix::errno::Errno::ESRCH);
        if foreground != self.host_group && (Some(foreground) == self.lent_to || gone) {
            Terminal::set_foreground(self.tty.as_fd(), self.host_group);
        }
    }
}
