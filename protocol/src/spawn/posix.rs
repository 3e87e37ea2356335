//! Starting the plugin with `posix_spawn`: the argv, the environment built
//! in one wiped buffer (rule 1), the pipes on 0 to 3 (and the info pipe on
//! 4, rule 10) and every other descriptor closed (rule 9), its own process
//! group (rule 7).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use nix::unistd::Pid;

use crate::secret::wipe;

use super::process::{ExitWatch, PluginProcess};

pub(super) fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| nul_error())
}

pub(super) fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "an argument or environment variable contains a NUL byte",
    )
}

/// The plugin's environment as `posix_spawn` takes it: `NAME=value\0`
/// entries in one buffer, built in one pass and wiped when dropped, since
/// the caller's additions may be secrets (a client secret, say).
pub(super) struct Environment {
    pub(super) entries: Vec<u8>,
    pub(super) starts: Vec<usize>,
}

impl Environment {
    /// The host's environment less `removed`, then `additions`; a later
    /// variable of the same name replaces an earlier one.
    pub(super) fn new(
        additions: &[(&OsStr, &OsStr)],
        removed: &[&OsStr],
    ) -> io::Result<Environment> {
        let added = |name: &OsStr| {
            additions.iter().any(|(added, _)| *added == name) || removed.contains(&name)
        };
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

    pub(super) fn push(&mut self, name: &OsStr, value: &OsStr) {
        self.starts.push(self.entries.len());
        self.entries.extend_from_slice(name.as_bytes());
        self.entries.push(b'=');
        self.entries.extend_from_slice(value.as_bytes());
        self.entries.push(0);
    }

    /// The `envp` array; valid while `self` is neither changed nor dropped.
    pub(super) fn pointers(&self) -> Vec<*mut libc::c_char> {
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

/// Moves a descriptor the child will receive out of 0..=4, so that no
/// `dup2` in the spawn clobbers another or is a no-op that keeps
/// close-on-exec.
pub(super) fn above_state_fd(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > crate::INFO_FD {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we then own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, crate::INFO_FD + 1) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

pub(super) fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// posix_spawn file actions: exists only once initialised, destroyed
/// exactly once on drop, however `spawn` returns. Boxed, so the initialised
/// object never moves.
pub(super) struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    pub(super) fn new() -> io::Result<FileActions> {
        // SAFETY: an all-zero value is only storage for init to fill; it is
        // never used before init succeeds, and not destroyed if it fails.
        let mut raw = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` points to writable storage of the right type.
        check(unsafe { libc::posix_spawn_file_actions_init(&mut *raw) })?;
        Ok(FileActions(raw))
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
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
pub(super) struct SpawnAttributes(Box<libc::posix_spawnattr_t>);

impl SpawnAttributes {
    pub(super) fn new() -> io::Result<SpawnAttributes> {
        // SAFETY: as in `FileActions::new`.
        let mut raw = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` points to writable storage of the right type.
        check(unsafe { libc::posix_spawnattr_init(&mut *raw) })?;
        Ok(SpawnAttributes(raw))
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::posix_spawnattr_t {
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
    /// Taken out of the host's environment: what the host does not offer
    /// this run, though its own environment may have it from elsewhere.
    pub(crate) env_remove: &'a [&'a OsStr],
    /// Becomes the plugin's fd 3.
    /// The plugin's end of the state pipe; the caller closes its copy once
    /// the plugin has started (a failed start may be tried again).
    pub(crate) state_fd: BorrowedFd<'a>,
    /// Becomes the plugin's fd 4 (rule 10), when the info channel is
    /// offered; the caller closes its copy as for `state_fd`.
    pub(crate) info_fd: Option<BorrowedFd<'a>>,
    /// The controlling terminal, to make the plugin's group its
    /// foreground group before it runs (see [`Terminal`]).
    pub(crate) terminal: Option<BorrowedFd<'a>>,
    /// A terminal's path: the plugin starts a session of its own, with this
    /// terminal as its controlling terminal, instead of a group of ours.
    pub(crate) session_terminal: Option<&'a Path>,
    pub(crate) grace: Duration,
}

/// Starts the plugin in a new process group (or a new session, with
/// `session_terminal`), with piped stdio and `state_fd` as its fd 3.
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
    let environment = Environment::new(spawn.env, spawn.env_remove)?;
    #[cfg_attr(
        not(all(target_os = "linux", target_env = "gnu")),
        allow(unused_variables)
    )]
    let session_terminal: Option<CString> = match spawn.session_terminal {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        Some(path) => Some(cstring(path.as_os_str().as_bytes())?),
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a session of its own with a terminal needs Linux with glibc",
            ))
        }
        None => None,
    };
    let envp = environment.pointers();

    let (stdin_child, stdin_host) = pipe_pair()?;
    let (stdout_host, stdout_child) = pipe_pair()?;
    let (stderr_host, stderr_child) = pipe_pair()?;
    let stdin_child = above_state_fd(stdin_child)?;
    let stdout_child = above_state_fd(stdout_child)?;
    let stderr_child = above_state_fd(stderr_child)?;
    let state_moved = match spawn.state_fd.as_raw_fd() {
        fd if fd > crate::INFO_FD => None,
        _ => Some(above_state_fd(spawn.state_fd.try_clone_to_owned()?)?),
    };
    let state_child = state_moved.as_ref().map_or(spawn.state_fd, OwnedFd::as_fd);
    let info_moved = match spawn.info_fd {
        Some(fd) if fd.as_raw_fd() <= crate::INFO_FD => {
            Some(above_state_fd(fd.try_clone_to_owned()?)?)
        }
        _ => None,
    };
    let info_child = info_moved.as_ref().map(OwnedFd::as_fd).or(spawn.info_fd);

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
        // First, while the terminal's descriptor is still the one given
        // (the dup2s below may reuse its number). In the child, after it
        // joined its new group (an attribute, applied before any file
        // action) and before it runs:
        // no window in which it could touch the terminal from the
        // background (and be stopped by SIGTTIN). glibc 2.35 or later.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if let Some(terminal) = spawn.terminal {
            check(libc::posix_spawn_file_actions_addtcsetpgrp_np(
                actions,
                terminal.as_raw_fd(),
            ))?;
        }
        for (from, to) in [
            (stdin_child.as_fd(), 0),
            (stdout_child.as_fd(), 1),
            (stderr_child.as_fd(), 2),
            (state_child, crate::STATE_FD),
        ]
        .into_iter()
        .chain(info_child.map(|info| (info, crate::INFO_FD)))
        {
            check(libc::posix_spawn_file_actions_adddup2(
                actions,
                from.as_raw_fd(),
                to,
            ))?;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let first_closed = if info_child.is_some() {
                crate::INFO_FD + 1
            } else {
                crate::STATE_FD + 1
            };
            // In a session of its own (an attribute, applied before any file
            // action), a process without a terminal that opens one gets it
            // as its controlling terminal, and keeps it once the descriptor
            // is closed: opened where closefrom below closes it.
            if let Some(path) = &session_terminal {
                check(libc::posix_spawn_file_actions_addopen(
                    actions,
                    first_closed,
                    path.as_ptr(),
                    libc::O_RDWR,
                    0,
                ))?;
            }
            // Rule 9: nothing but 0..=3 (and 4 when the info channel is
            // offered, rule 10), whatever the host left inheritable.
            check(libc::posix_spawn_file_actions_addclosefrom_np(
                actions,
                first_closed,
            ))?;
        }

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
        // A session of its own is a group of its own too (its id the
        // plugin's pid), and a session leader may not change its group.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let group = if session_terminal.is_some() {
            libc::POSIX_SPAWN_SETSID as libc::c_int
        } else {
            libc::POSIX_SPAWN_SETPGROUP
        };
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let group = libc::POSIX_SPAWN_SETPGROUP;
        check(libc::posix_spawnattr_setflags(
            attributes,
            (group | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
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
    drop((
        stdin_child,
        stdout_child,
        stderr_child,
        state_moved,
        info_moved,
    ));
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

/// The host's ends of the plugin's stdio pipes.
pub(crate) struct HostPipes {
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// posix_spawn functions return an error number instead of setting errno.
pub(super) fn check(code: libc::c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code))
    }
}
