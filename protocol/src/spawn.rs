//! Starting a plugin with `posix_spawn`: its own process group, the state
//! pipe on fd 3, every other descriptor closed (rules 1, 7 and 9), and
//! waiting for it through a pidfd.
//!
//! Why not `tokio::process`: mapping fd 3 and closing the rest needs a
//! `pre_exec` hook there, and any hook makes the standard library `fork()`
//! the whole host instead of using `posix_spawn` (a vfork), which costs a
//! third of a plugin run for a small plugin (see BENCHMARKS.md).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// A running plugin. Dropped before it was waited for, it is reaped by a
/// background thread (whoever dropped it stops its group: `ProcessGroup`).
pub(crate) struct PluginProcess {
    pid: libc::pid_t,
    /// The host's end of the plugin's stdin, not yet registered with the
    /// runtime (an empty state needs no more than closing it).
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<pipe::Receiver>,
    pub(crate) stderr: Option<pipe::Receiver>,
    /// Readable once the plugin has exited; `None` on kernels without
    /// pidfds (before 5.3), where `wait` polls instead.
    exited: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl PluginProcess {
    pub(crate) fn id(&self) -> i32 {
        self.pid
    }

    /// Waits for the plugin to exit and reaps it. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_reap()? {
                return Ok(status);
            }
            match &self.exited {
                Some(exited) => exited.readable().await?.clear_ready(),
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        loop {
            // SAFETY: waitpid writes only to `raw`.
            let reaped = unsafe { libc::waitpid(self.pid, &mut raw, libc::WNOHANG) };
            match reaped {
                0 => return Ok(None),
                -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
                -1 => return Err(io::Error::last_os_error()),
                _ => {
                    let status = ExitStatus::from_raw(raw);
                    self.status = Some(status);
                    return Ok(Some(status));
                }
            }
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let pid = self.pid;
        // No zombies (rule 7): the group is being stopped; wait for it.
        let _ = std::thread::Builder::new()
            .name("authplug-reaper".into())
            .spawn(move || loop {
                let mut raw = 0;
                // SAFETY: waitpid writes only to `raw`.
                let reaped = unsafe { libc::waitpid(pid, &mut raw, 0) };
                if reaped != -1 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            });
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument or environment variable contains a NUL byte",
        )
    })
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

/// Frees the spawn attributes and file actions however `spawn` returns.
struct SpawnSetup {
    actions: libc::posix_spawn_file_actions_t,
    attributes: libc::posix_spawnattr_t,
}

impl Drop for SpawnSetup {
    fn drop(&mut self) {
        // SAFETY: both were initialised before this guard was built.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attributes);
        }
    }
}

/// Starts `program` with `args` and exactly `env` as its environment, in a
/// new process group, with piped stdio and `state_fd` as its fd 3.
pub(crate) fn spawn(
    program: &OsStr,
    args: &[OsString],
    env: &[(OsString, OsString)],
    state_fd: OwnedFd,
) -> io::Result<PluginProcess> {
    let mut argv_owned = vec![cstring(program.as_bytes())?];
    for arg in args {
        argv_owned.push(cstring(arg.as_bytes())?);
    }
    let mut envp_owned = Vec::with_capacity(env.len());
    for (key, value) in env {
        let mut entry = key.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        envp_owned.push(cstring(&entry)?);
    }
    let argv: Vec<*mut libc::c_char> = argv_owned
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let envp: Vec<*mut libc::c_char> = envp_owned
        .iter()
        .map(|s| s.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();

    let (stdin_child, stdin_host) = pipe_pair()?;
    let (stdout_host, stdout_child) = pipe_pair()?;
    let (stderr_host, stderr_child) = pipe_pair()?;
    let stdin_child = above_state_fd(stdin_child)?;
    let stdout_child = above_state_fd(stdout_child)?;
    let stderr_child = above_state_fd(stderr_child)?;
    let state_child = above_state_fd(state_fd)?;

    let mut pid: libc::pid_t = 0;
    // SAFETY: the spawn structures are initialised before use and freed by
    // the guard; every pointer handed to posix_spawnp outlives the call
    // (argv, envp and their strings live until the end of this function).
    let spawned = unsafe {
        let mut setup = SpawnSetup {
            actions: std::mem::zeroed(),
            attributes: std::mem::zeroed(),
        };
        check(libc::posix_spawn_file_actions_init(&mut setup.actions))?;
        if let Err(error) = check(libc::posix_spawnattr_init(&mut setup.attributes)) {
            libc::posix_spawn_file_actions_destroy(&mut setup.actions);
            return Err(error);
        }
        let actions = &mut setup.actions as *mut _;
        for (from, to) in [
            (&stdin_child, 0),
            (&stdout_child, 1),
            (&stderr_child, 2),
            (&state_child, crate::STATE_FD),
        ] {
            check(libc::posix_spawn_file_actions_adddup2(
                actions,
                from.as_raw_fd(),
                to,
            ))?;
        }
        // Rule 9: nothing but 0..=3, whatever the host left inheritable.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        check(libc::posix_spawn_file_actions_addclosefrom_np(
            actions,
            crate::STATE_FD + 1,
        ))?;

        let attributes = &mut setup.attributes as *mut _;
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
    spawned?;
    // The child has its copies; ours must close so the pipes reach EOF.
    drop((stdin_child, stdout_child, stderr_child, state_child));

    // SAFETY: pidfd_open only reads its arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let exited = if pidfd >= 0 {
        // SAFETY: a fresh descriptor we own (pidfds are close-on-exec).
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        // SAFETY: the AsyncFd owns the pidfd outright; nothing else closes
        // or replaces it while it is registered.
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }.ok()
    } else {
        None
    };
    let mut process = PluginProcess {
        pid,
        stdin: None,
        stdout: None,
        stderr: None,
        exited,
        status: None,
    };
    process.stdin = Some(stdin_host);
    let registered = receiver(stdout_host).and_then(|stdout| Ok((stdout, receiver(stderr_host)?)));
    match registered {
        Ok((stdout, stderr)) => {
            process.stdout = Some(stdout);
            process.stderr = Some(stderr);
            Ok(process)
        }
        Err(error) => {
            // Nobody could talk to it: stop it (the drop reaps it).
            // SAFETY: killpg takes plain integers.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
            Err(error)
        }
    }
}

/// Sets O_NONBLOCK with one system call (`FIONBIO`).
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int from the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The host's read end of a pipe made here, for the runtime. The checks of
/// `Receiver::from_owned_fd` (a FIFO? readable?) are known answers and cost
/// three system calls per pipe, a noticeable share of a small plugin run.
pub(crate) fn receiver(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    set_nonblocking(&fd)?;
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// The host's write end of a pipe made here; see [`receiver`].
pub(crate) fn sender(fd: OwnedFd) -> io::Result<pipe::Sender> {
    set_nonblocking(&fd)?;
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
