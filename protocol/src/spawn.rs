//! The plugin process from start to reaping: started with `posix_spawn` in
//! its own process group with the pipes on 0 to 3 and nothing else (rules
//! 1, 7 and 9), its exit watched without reaping it, the TERM, grace and
//! KILL that stop it, and the reaping (rule 7).
//!
//! Why not `tokio::process`: mapping fd 3 and closing the rest needs a
//! `pre_exec` hook there, and any hook makes the standard library `fork()`
//! the whole host instead of using `posix_spawn` (a vfork), which costs a
//! third of a plugin run for a small plugin (see BENCHMARKS.md).
//!
//! Why the exit is observed with `WNOWAIT` and the leader reaped only after
//! the last signal: an unreaped leader keeps its pid, and with it the
//! process group id, from being reused, so a `killpg` sent after the
//! plugin exited (the drain window's KILL, rule 8; the KILL after the
//! grace) can only reach the plugin's own group, never a stranger that got
//! the same number.

use std::ffi::{CString, OsStr, OsString};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use crate::secret::wipe;

/// How often the exit is checked where there are no pidfds (Linux before
/// 5.3), and by the thread that stops a cancelled run.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A started plugin, until it is reaped. Dropped before that (the run was
/// cancelled or failed half-way), it stops in the background: TERM to its
/// group and to itself now, KILL after the rest of the grace, then reaped.
pub(crate) struct PluginProcess {
    pid: Pid,
    grace: Duration,
    /// Its exit, once observed; it is still unreaped (a zombie) then.
    exit: Option<ExitStatus>,
    watch: ExitWatch,
    /// When TERM was first sent; KILL follows `grace` later.
    terminated_at: Option<Instant>,
    reaped: bool,
}

/// How the exit is awaited: started when first needed, not at spawn (a run
/// that fails to set up its pipes never needs it).
enum ExitWatch {
    NotStarted,
    /// Readable once the plugin has exited.
    Pidfd(AsyncFd<OwnedFd>),
    /// No pidfd: check every `EXIT_POLL_INTERVAL`.
    Polling(Pin<Box<tokio::time::Sleep>>),
}

/// The host's ends of the plugin's stdio pipes.
pub(crate) struct HostPipes {
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
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

    fn kill_deadline(&self) -> Instant {
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

fn signal_plugin(pid: Pid, signal: Signal) {
    // ESRCH just means nobody is left there.
    let _ = killpg(pid, signal);
    // A plugin that left its group (setpgid, setsid) is not reached by that:
    // by its pid too, then, but only then (a TERM trap would run twice).
    if nix::unistd::getpgid(Some(pid)).is_ok_and(|group| group != pid) {
        let _ = kill(pid, signal);
    }
}

fn start_exit_watch(pid: Pid) -> ExitWatch {
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
/// leaving it a zombie.
fn observe_exit(pid: Pid) -> io::Result<Option<ExitStatus>> {
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
fn wait_for_exit_until(pid: Pid, deadline: Instant) {
    while Instant::now() < deadline {
        match observe_exit(pid) {
            Ok(None) => std::thread::sleep(EXIT_POLL_INTERVAL),
            _ => return,
        }
    }
}

fn reap(pid: Pid) {
    let mut raw = 0;
    loop {
        // SAFETY: waitpid writes only to `raw`.
        let reaped = unsafe { libc::waitpid(pid.as_raw(), &mut raw, 0) };
        if reaped != -1 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| nul_error())
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "an argument or environment variable contains a NUL byte",
    )
}

/// The plugin's environment as `posix_spawn` takes it: `NAME=value\0`
/// entries in one buffer, built in one pass and wiped when dropped, since
/// the caller's additions may be secrets (a client secret, say).
struct Environment {
    entries: Vec<u8>,
    starts: Vec<usize>,
}

impl Environment {
    /// The host's environment, then `additions`; a later variable of the
    /// same name replaces an earlier one.
    fn new(additions: &[(&OsStr, &OsStr)]) -> io::Result<Environment> {
        let added = |name: &OsStr| additions.iter().any(|(added, _)| *added == name);
        let mut environment = Environment {
            entries: Vec::with_capacity(4096),
            starts: Vec::with_capacity(64),
        };
        for (name, value) in std::env::vars_os() {
            if !added(&name) {
                environment.push(&name, &value);
            }
        }
        // Room for the additions first: growing the buffer after they are
        // in it would leave an unwiped copy of them behind.
        let room: usize = additions
            .iter()
            .map(|(name, value)| name.len() + value.len() + 2)
            .sum();
        environment.entries.reserve(room);
        for (i, (name, value)) in additions.iter().enumerate() {
            if additions[i + 1..].iter().any(|(later, _)| later == name) {
                continue;
            }
            if name.as_bytes().contains(&0) || value.as_bytes().contains(&0) {
                return Err(nul_error());
            }
            environment.push(name, value);
        }
        Ok(environment)
    }

    fn push(&mut self, name: &OsStr, value: &OsStr) {
        self.starts.push(self.entries.len());
        self.entries.extend_from_slice(name.as_bytes());
        self.entries.push(b'=');
        self.entries.extend_from_slice(value.as_bytes());
        self.entries.push(0);
    }

    /// The `envp` array; valid while `self` is neither changed nor dropped.
    fn pointers(&self) -> Vec<*mut libc::c_char> {
        let base = self.entries.as_ptr() as *mut libc::c_char;
        self.starts
            .iter()
            // SAFETY: every start lies inside `entries`.
            .map(|&start| unsafe { base.add(start) })
            .chain(std::iter::once(std::ptr::null_mut()))
            .collect()
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        wipe(&mut self.entries);
    }
}

/// Moves a descriptor the child will receive out of 0..=3, so that no
/// `dup2` in the spawn clobbers another or is a no-op that keeps
/// close-on-exec.
fn above_state_fd(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 3 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we then own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 4) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// posix_spawn file actions: exists only once initialised, destroyed
/// exactly once on drop, however `spawn` returns. Boxed, so the initialised
/// object never moves.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: an all-zero value is only storage for init to fill; it is
        // never used before init succeeds, and not destroyed if it fails.
        let mut raw = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` points to writable storage of the right type.
        check(unsafe { libc::posix_spawn_file_actions_init(&mut *raw) })?;
        Ok(FileActions(raw))
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        &mut *self.0
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: built only after init succeeded; dropped once.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut *self.0);
        }
    }
}

/// posix_spawn attributes, like [`FileActions`].
struct SpawnAttributes(Box<libc::posix_spawnattr_t>);

impl SpawnAttributes {
    fn new() -> io::Result<SpawnAttributes> {
        // SAFETY: as in `FileActions::new`.
        let mut raw = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` points to writable storage of the right type.
        check(unsafe { libc::posix_spawnattr_init(&mut *raw) })?;
        Ok(SpawnAttributes(raw))
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        &mut *self.0
    }
}

impl Drop for SpawnAttributes {
    fn drop(&mut self) {
        // SAFETY: built only after init succeeded; dropped once.
        unsafe {
            libc::posix_spawnattr_destroy(&mut *self.0);
        }
    }
}

/// What to start and how.
pub(crate) struct Spawn<'a> {
    pub(crate) program: &'a OsStr,
    pub(crate) args: &'a [OsString],
    /// Added to the host's environment, replacing variables of the same
    /// name.
    pub(crate) env: &'a [(&'a OsStr, &'a OsStr)],
    /// Becomes the plugin's fd 3.
    /// The plugin's end of the state pipe; the caller closes its copy once
    /// the plugin has started (a failed start may be tried again).
    pub(crate) state_fd: BorrowedFd<'a>,
    /// The controlling terminal, to make the plugin's group its
    /// foreground group before it runs (see [`Terminal`]).
    pub(crate) terminal: Option<BorrowedFd<'a>>,
    pub(crate) grace: Duration,
}

/// Starts the plugin in a new process group, with piped stdio and
/// `state_fd` as its fd 3.
pub(crate) fn spawn(spawn: Spawn<'_>) -> io::Result<(PluginProcess, HostPipes)> {
    let mut argv_owned = vec![cstring(spawn.program.as_bytes())?];
    for arg in spawn.args {
        argv_owned.push(cstring(arg.as_bytes())?);
    }
    let argv: Vec<*mut libc::c_char> = argv_owned
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let environment = Environment::new(spawn.env)?;
    let envp = environment.pointers();

    let (stdin_child, stdin_host) = pipe_pair()?;
    let (stdout_host, stdout_child) = pipe_pair()?;
    let (stderr_host, stderr_child) = pipe_pair()?;
    let stdin_child = above_state_fd(stdin_child)?;
    let stdout_child = above_state_fd(stdout_child)?;
    let stderr_child = above_state_fd(stderr_child)?;
    let state_moved = match spawn.state_fd.as_raw_fd() {
        fd if fd > 3 => None,
        _ => Some(above_state_fd(spawn.state_fd.try_clone_to_owned()?)?),
    };
    let state_child = state_moved.as_ref().map_or(spawn.state_fd, OwnedFd::as_fd);

    let mut pid: libc::pid_t = 0;
    // Each guard exists only once its init succeeded and frees exactly
    // what it owns.
    let mut file_actions = FileActions::new()?;
    let mut spawn_attributes = SpawnAttributes::new()?;
    // SAFETY: the spawn structures are initialised (their guards exist) and
    // outlive this block; every pointer handed to posix_spawnp outlives the
    // call (argv, envp and what they point to live until the end of this
    // function).
    let spawned = unsafe {
        let actions = file_actions.as_mut_ptr();
        for (from, to) in [
            (stdin_child.as_fd(), 0),
            (stdout_child.as_fd(), 1),
            (stderr_child.as_fd(), 2),
            (state_child, crate::STATE_FD),
        ] {
            check(libc::posix_spawn_file_actions_adddup2(
                actions,
                from.as_raw_fd(),
                to,
            ))?;
        }
        // In the child, after it joined its new group and before it runs:
        // no window in which it could touch the terminal from the
        // background (and be stopped by SIGTTIN). glibc 2.35 or later.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if let Some(terminal) = spawn.terminal {
            check(libc::posix_spawn_file_actions_addtcsetpgrp_np(
                actions,
                terminal.as_raw_fd(),
            ))?;
        }
        // Rule 9: nothing but 0..=3, whatever the host left inheritable.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        check(libc::posix_spawn_file_actions_addclosefrom_np(
            actions,
            crate::STATE_FD + 1,
        ))?;

        let attributes = spawn_attributes.as_mut_ptr();
        // Rule 7: its own group, so it can be stopped with all it started.
        check(libc::posix_spawnattr_setpgroup(attributes, 0))?;
        // As the standard library does: no blocked signals, and SIGPIPE back
        // to its default (Rust ignores it in the host).
        let mut no_signals: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut no_signals);
        check(libc::posix_spawnattr_setsigmask(attributes, &no_signals))?;
        let mut pipe_signal: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_signal);
        libc::sigaddset(&mut pipe_signal, libc::SIGPIPE);
        check(libc::posix_spawnattr_setsigdefault(
            attributes,
            &pipe_signal,
        ))?;
        check(libc::posix_spawnattr_setflags(
            attributes,
            (libc::POSIX_SPAWN_SETPGROUP
                | libc::POSIX_SPAWN_SETSIGMASK
                | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        ))?;
        check(libc::posix_spawnp(
            &mut pid,
            argv[0],
            actions,
            attributes,
            argv.as_ptr(),
            envp.as_ptr(),
        ))
    };
    // The environment's copy of the caller's additions is wiped here.
    drop((envp, environment));
    spawned?;
    // The child has its copies; ours must close so the pipes reach EOF.
    drop((stdin_child, stdout_child, stderr_child, state_moved));
    let process = PluginProcess {
        pid: Pid::from_raw(pid),
        grace: spawn.grace,
        exit: None,
        watch: ExitWatch::NotStarted,
        terminated_at: None,
        reaped: false,
    };
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    if let Some(terminal) = spawn.terminal {
        // Best effort without the spawn action: the plugin may touch the
        // terminal before this runs.
        Terminal::set_foreground(terminal, process.pid);
    }
    let pipes = HostPipes {
        stdin: stdin_host,
        stdout: stdout_host,
        stderr: stderr_host,
    };
    Ok((process, pipes))
}

/// The controlling terminal, lent to the plugin's process group for a run
/// (`RunOptions::foreground_terminal`) and taken back when dropped. Only a
/// host in the terminal's foreground group lends it: a host in the
/// background must not take the terminal from whoever has it.
pub(crate) struct Terminal {
    tty: OwnedFd,
    host_group: Pid,
    lent_to: Option<Pid>,
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
    fn set_foreground(tty: BorrowedFd<'_>, group: Pid) {
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

/// posix_spawn functions return an error number instead of setting errno.
fn check(code: libc::c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code))
    }
}
