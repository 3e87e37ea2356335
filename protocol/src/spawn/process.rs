//! A started plugin until it is reaped: its exit watched without reaping
//! it, the TERM, grace and KILL that stop it, and the reaping (rule 7).

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;

/// How often the exit is checked where there are no pidfds (Linux before
/// 5.3), and by the thread that stops a cancelled run.
pub(super) const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A started plugin, until it is reaped. Dropped before that (the run was
/// cancelled or failed half-way), it stops in the background: TERM to its
/// group and to itself now, KILL after the rest of the grace, then reaped.
pub(crate) struct PluginProcess {
    pub(super) pid: Pid,
    pub(super) grace: Duration,
    /// Its exit, once observed; it is still unreaped (a zombie) then.
    pub(super) exit: Option<ExitStatus>,
    pub(super) watch: ExitWatch,
    /// When TERM was first sent; KILL follows `grace` later.
    pub(super) terminated_at: Option<Instant>,
    pub(super) reaped: bool,
}

/// How the exit is awaited: started when first needed, not at spawn (a run
/// that fails to set up its pipes never needs it).
pub(super) enum ExitWatch {
    NotStarted,
    /// Readable once the plugin has exited.
    Pidfd(AsyncFd<OwnedFd>),
    /// No pidfd: check every `EXIT_POLL_INTERVAL`.
    Polling(Pin<Box<tokio::time::Sleep>>),
}

impl PluginProcess {
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// The exit status if the plugin has exited, without reaping it.
    pub(crate) fn try_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = observe_exit(self.pid)?;
        }
        Ok(self.exit)
    }

    /// Ready with the exit status once the plugin has exited; it is not
    /// reaped (see the module's comment).
    pub(crate) fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        loop {
            if let Some(status) = self.exit {
                return Poll::Ready(Ok(status));
            }
            match &mut self.watch {
                ExitWatch::NotStarted => {
                    // No check first: a pidfd of a process that has
                    // already exited is readable at once.
                    self.watch = start_exit_watch(self.pid);
                }
                ExitWatch::Pidfd(pidfd) => {
                    let mut ready = ready!(pidfd.poll_read_ready(cx))?;
                    self.exit = observe_exit(self.pid)?;
                    if self.exit.is_none() {
                        ready.clear_ready();
                    }
                }
                ExitWatch::Polling(sleep) => {
                    self.exit = observe_exit(self.pid)?;
                    if self.exit.is_none() {
                        ready!(sleep.as_mut().poll(cx));
                        let next = tokio::time::Instant::now() + EXIT_POLL_INTERVAL;
                        sleep.as_mut().reset(next);
                    }
                }
            }
        }
    }

    pub(crate) async fn exited(&mut self) -> io::Result<ExitStatus> {
        std::future::poll_fn(|cx| self.poll_exit(cx)).await
    }

    /// Sends `signal` to the plugin's group and to the plugin itself, in
    /// case it left the group (`setpgid`, or `setsid` after a fork): the
    /// group alone may reach nobody. Until it is reaped, neither id can
    /// belong to anyone else.
    pub(crate) fn signal(&self, signal: Signal) {
        if !self.reaped {
            signal_plugin(self.pid, signal);
        }
    }

    /// The first step of stopping it: TERM, once.
    pub(crate) fn terminate(&mut self) {
        if self.terminated_at.is_none() {
            self.signal(Signal::SIGTERM);
            self.terminated_at = Some(Instant::now());
        }
    }

    /// Rule 7: TERM (if not sent yet), up to the grace for the plugin to
    /// exit, KILL for the group, then reaped. If this future is dropped
    /// half-way, the drop finishes the job in the background.
    pub(crate) async fn stop(mut self) {
        self.terminate();
        let kill_at = self.kill_deadline();
        let _ = tokio::time::timeout_at(kill_at.into(), self.exited()).await;
        self.signal(Signal::SIGKILL);
        // KILL cannot be ignored, but a process stuck in the kernel (a dead
        // NFS server, say) cannot die at once either: then the drop reaps
        // it in the background instead of hanging the host.
        if let Ok(Ok(_)) = tokio::time::timeout(self.grace, self.exited()).await {
            self.reap();
        }
    }

    /// Reaps the plugin once it has exited and nothing more will be sent
    /// to its group. No zombies (rule 7).
    pub(crate) fn reap(mut self) {
        if let Ok(Some(_)) = self.try_exit() {
            reap(self.pid);
            self.reaped = true;
        }
        // Not exited (a caller's mistake): the drop stops it instead.
    }

    pub(super) fn kill_deadline(&self) -> Instant {
        self.terminated_at.unwrap_or_else(Instant::now) + self.grace
    }
}

impl Drop for PluginProcess {
    /// The run was cancelled or failed before the plugin was reaped.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        self.terminate();
        let (pid, kill_at, exited) = (self.pid, self.kill_deadline(), self.exit.is_some());
        let stopper = std::thread::Builder::new()
            .name("authplug-stop".into())
            .spawn(move || {
                if !exited {
                    wait_for_exit_until(pid, kill_at);
                }
                signal_plugin(pid, Signal::SIGKILL);
                reap(pid);
            });
        if stopper.is_err() {
            // No thread to wait the grace with: better KILL now than leave
            // the plugin running.
            signal_plugin(pid, Signal::SIGKILL);
        }
    }
}

pub(super) fn signal_plugin(pid: Pid, signal: Signal) {
    // ESRCH just means nobody is left there.
    let _ = killpg(pid, signal);
    // A plugin that left its group (setpgid, setsid) is not reached by that:
    // by its pid too, then, but only then (a TERM trap would run twice).
    if nix::unistd::getpgid(Some(pid)).is_ok_and(|group| group != pid) {
        let _ = kill(pid, signal);
    }
}

pub(super) fn start_exit_watch(pid: Pid) -> ExitWatch {
    // SAFETY: pidfd_open only reads its arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if pidfd >= 0 {
        // SAFETY: a fresh descriptor we own (pidfds are close-on-exec).
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        // SAFETY: the AsyncFd owns the pidfd outright; nothing else closes
        // or replaces it while it is registered.
        let registered =
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        if let Ok(pidfd) = registered {
            return ExitWatch::Pidfd(pidfd);
        }
    }
    ExitWatch::Polling(Box::pin(tokio::time::sleep(EXIT_POLL_INTERVAL)))
}

/// `waitid(WEXITED | WNOHANG | WNOWAIT)`: the status if `pid` has exited,
/// leaving it a zombie. Called through libc, not nix: nix's `waitid`
/// refuses a status it cannot name as a `Signal` (a plugin killed by a
/// realtime signal), and this must report every death.
pub(super) fn observe_exit(pid: Pid) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: all-zero is a valid siginfo_t; zeroing si_pid first is
        // how a WNOHANG "not yet" is told apart (waitid(2)).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only to `info`.
        let result = unsafe {
            libc::waitid(
                libc::P_PID,
                pid.as_raw() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if result == -1 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        // SAFETY: waitid filled in the SIGCHLD fields, or left them zero.
        let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
        if child == 0 {
            return Ok(None);
        }
        // Back to the wait(2) encoding that ExitStatus holds.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_KILLED => status & 0x7f,
            libc::CLD_DUMPED => (status & 0x7f) | 0x80,
            _ => return Ok(None),
        };
        return Ok(Some(ExitStatus::from_raw(raw)));
    }
}

/// Waits for `pid` to exit, blocking, until `deadline`.
pub(super) fn wait_for_exit_until(pid: Pid, deadline: Instant) {
    while Instant::now() < deadline {
        match observe_exit(pid) {
            Ok(None) => std::thread::sleep(EXIT_POLL_INTERVAL),
            _ => return,
        }
    }
}

pub(super) fn reap(pid: Pid) {
    // The status is known already (observed with WNOWAIT); nix's
    // conversion of it may fail (a realtime signal), the reaping does not.
    while nix::sys::wait::waitpid(pid, None) == Err(nix::errno::Errno::EINTR) {}
}
