//! The plugin side: an SDK for plugins written in Rust.
//!
//! A plugin is one [`Plugin`] impl and one call to [`main`]:
//!
//! ```no_run
//! use authplug_protocol::plugin::{self, Plugin, Request, Response};
//!
//! struct Static;
//!
//! impl Plugin for Static {
//!     fn run(&mut self, request: Request) -> Result<Response, plugin::Error> {
//!         // Keep whatever state we had; hand out a fixed token.
//!         Ok(Response::new("my-token", request.state))
//!     }
//! }
//!
//! fn main() {
//!     plugin::main(Static)
//! }
//! ```
//!
//! [`main`] marks fd 3 close-on-exec before anything else (rule 9), so a
//! browser or helper the plugin launches never inherits it. A plugin whose
//! construction already starts threads or processes (an async runtime, an
//! HTTP client with a resolver thread) builds itself in [`main_with`]
//! instead, which protects fd 3 first:
//!
//! ```no_run
//! # use authplug_protocol::plugin::{self, Plugin, Request, Response};
//! # struct Client;
//! # impl Client { fn new() -> Result<Client, plugin::Error> { Ok(Client) } }
//! # impl Plugin for Client {
//! #     fn run(&mut self, r: Request) -> Result<Response, plugin::Error> { Ok(Response::new("t", r.state)) }
//! # }
//! fn main() {
//!     plugin::main_with(Client::new) // fd 3 is protected before Client::new runs
//! }
//! ```
//!
//! Anything that runs before `main` itself must call [`protect_state_fd`].

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::secret::SecretBuf;
use crate::{
    Reason, State, Token, ENV_CHALLENGE, ENV_INFO_FD, ENV_INTERACTIVE, ENV_KEEP_STATE_EXIT,
    ENV_LOGIN_NEEDED_EXIT, ENV_PROTOCOL, ENV_REASON, INFO_FD, STATE_FD, STATE_LIMIT,
};

/// Any error a plugin reports; [`main`] prints it and its causes on stderr.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the host asked for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// What the last successful run wrote on fd 3; empty the first time.
    pub state: State,
    /// Why the host runs us. Hosts that do not set `AUTHPLUG_REASON` (epithet)
    /// get `initial` for empty state and `refresh` otherwise; see
    /// [`Request::reason_given`] and [`Request::may_reuse_token`].
    pub reason: Reason,
    /// Whether the host said why (`AUTHPLUG_REASON`). An epithet host does
    /// not: it re-runs a plugin that holds state to renew a certificate or
    /// after a server refused the token, and cannot say which (rule 1).
    pub reason_given: bool,
    /// Whether we may open a browser or prompt. Hosts that do not say are
    /// taken to allow it.
    pub interactive: bool,
    /// `AUTHPLUG_PROTOCOL`, if the host set it.
    pub protocol_version: Option<u32>,
    /// The exit code with which a failed run may ask the host to keep its
    /// new state (`AUTHPLUG_KEEP_STATE_EXIT`, rule 4), if the host offers
    /// it. See [`fail_keeping_state`].
    pub keep_state_exit: Option<i32>,
    /// The exit code with which a failed run says "a login is needed"
    /// (`AUTHPLUG_LOGIN_NEEDED_EXIT`, rule 6), if the host offers it. See
    /// [`login_needed`].
    pub login_needed_exit: Option<i32>,
    /// With `rejected`: the challenge of the server that refused the token
    /// (`AUTHPLUG_CHALLENGE`, rule 1), when the host has it; read it with
    /// [`crate::challenge`] (the scopes a server asks for, say).
    pub challenge: Option<String>,
}

impl Request {
    /// Whether a token the plugin holds may be handed out again as it is:
    /// only when the host said why it runs the plugin and that reason is
    /// neither `rejected` nor `expiring` (the host wants a new one). A host
    /// that gives no reason may be asking because a server refused the last
    /// token (rule 1): get a fresh one, and fall back to the one held only
    /// if that is impossible (the provider cannot be reached), saying so on
    /// stderr.
    pub fn may_reuse_token(&self) -> bool {
        self.reason_given && !matches!(self.reason, Reason::Rejected | Reason::Expiring)
    }

    /// Whether a server may have refused the token the plugin holds: the
    /// host said `rejected`, or gave no reason (an epithet host re-running
    /// a plugin after a 401 cannot say so, rule 1). Such a token must not
    /// be handed out again from this run. `expiring` is not a refusal: the
    /// token held still works, and is only too close to its end.
    pub fn held_token_may_be_refused(&self) -> bool {
        !self.reason_given || self.reason == Reason::Rejected
    }

    /// Whether this host keeps the state of a failed run that asks it to
    /// ([`fail_keeping_state`]). Without it, a plugin should avoid spending
    /// anything (a refresh token that rotates) on a run that may fail.
    pub fn host_keeps_failed_state(&self) -> bool {
        self.keep_state_exit.is_some()
    }
}

impl Request {
    /// Builds a request from this process's environment and the given state.
    pub fn from_env(state: State) -> Request {
        let var = |name: &str| std::env::var(name).ok();
        let given = var(ENV_REASON).filter(|value| !value.is_empty());
        let reason = match &given {
            Some(value) => value.parse().unwrap_or(Reason::Refresh),
            None => Reason::for_state(&state),
        };
        let challenge = var(ENV_CHALLENGE)
            .filter(|value| reason == Reason::Rejected && crate::challenge::usable(value));
        Request {
            reason,
            reason_given: given.is_some(),
            interactive: var(ENV_INTERACTIVE).as_deref() != Some("0"),
            protocol_version: var(ENV_PROTOCOL).and_then(|v| v.trim().parse().ok()),
            keep_state_exit: offered_keep_state_exit(),
            login_needed_exit: offered_login_needed_exit(),
            challenge,
            state,
        }
    }
}

/// What the plugin hands back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response {
    /// The token, for stdout.
    pub token: Token,
    /// The complete new state; empty clears it.
    pub state: State,
    /// When the token expires, for a host that offers the info channel
    /// (rule 10); see [`Response::expires_at`].
    pub expires_at: Option<SystemTime>,
}

impl Response {
    /// A token and the state to keep.
    pub fn new(token: impl Into<Token>, state: impl Into<State>) -> Self {
        Response {
            token: token.into(),
            state: state.into(),
            expires_at: None,
        }
    }

    /// Says when the token expires (rule 10): a host that offers the info
    /// channel then refreshes it in time, even when it is opaque. Hosts
    /// that do not offer it (epithet) are told nothing, and nothing else
    /// changes. `None` says nothing.
    pub fn expires_at(mut self, at: impl Into<Option<SystemTime>>) -> Self {
        self.expires_at = at.into();
        self
    }

    /// No token and no state: the answer to a `logout` run, which the host
    /// judges by the exit code alone (PROTOCOL.md rule 1). Nothing is
    /// written on stdout.
    pub fn nothing() -> Self {
        Response::new(Token::default(), State::default())
    }
}

/// A failure that still hands the host a state to keep (rule 4): the run
/// obtained something that must not be lost (a rotated refresh token, fresh
/// tokens) before it failed. Made by [`fail_keeping_state`].
#[derive(Debug)]
pub struct FailedWithState {
    /// What went wrong, for the user.
    pub error: Error,
    /// The complete new state, as a successful run would write it.
    pub state: State,
}

impl std::fmt::Display for FailedWithState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for FailedWithState {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// An error for [`Plugin::run`] that asks the host to keep `state` although
/// the run failed. [`main`] writes the state on fd 3 and exits with the code
/// the host gave in `AUTHPLUG_KEEP_STATE_EXIT`; a host that did not offer it
/// keeps its old state, as after any failure, and the user is told that the
/// new one was lost.
pub fn fail_keeping_state(error: impl Into<Error>, state: State) -> Error {
    Box::new(FailedWithState {
        error: error.into(),
        state,
    })
}

/// A failure that is a login the run may not start (rule 6): made by
/// [`login_needed`].
#[derive(Debug)]
pub struct LoginNeeded {
    /// What the user should know: why a login is needed, and how to start it.
    pub error: Error,
}

impl std::fmt::Display for LoginNeeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for LoginNeeded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// An error for [`Plugin::run`] that says "a login is needed, and this run
/// may not start one" (a non-interactive run whose refresh token is gone).
/// [`main`] exits with the code the host offered in
/// `AUTHPLUG_LOGIN_NEEDED_EXIT`, so that the host can tell it from a
/// broken plugin and tell the user where to log in; a host that did not
/// offer it gets exit code 1, as for any failure. The host keeps its state.
pub fn login_needed(error: impl Into<Error>) -> Error {
    Box::new(LoginNeeded {
        error: error.into(),
    })
}

/// A credential plugin.
pub trait Plugin {
    /// Produce a token (and the state to keep) or fail with a message for
    /// the user. On failure the host keeps the previous state, unless the
    /// error is [`fail_keeping_state`]'s (rule 4).
    fn run(&mut self, request: Request) -> Result<Response, Error>;
}

/// Runs a plugin under the protocol and exits: 0 on success, 1 on failure
/// with the error and its causes on stderr.
///
/// `plugin` was built before this runs: if building it started threads or
/// processes, use [`main_with`].
pub fn main(plugin: impl Plugin) -> ! {
    main_with(|| Ok::<_, Error>(plugin))
}

/// [`main`] for a plugin built by `build`, which runs only after fd 3 is
/// marked close-on-exec (rule 9): whatever it starts (a runtime's threads,
/// a helper process) cannot inherit the state descriptor. A `build` error
/// is reported like a run's.
pub fn main_with<P, E>(build: impl FnOnce() -> Result<P, E>) -> !
where
    P: Plugin,
    E: Into<Error>,
{
    protect_state_fd();
    let result = build()
        .map_err(Into::into)
        .and_then(|mut plugin| {
            let request = read_request()?;
            plugin.run(request)
        })
        .and_then(|response| write_response(&response).map_err(Error::from));
    match result {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            let (error, code) = match error.downcast::<FailedWithState>() {
                Ok(failed) => {
                    let code = hand_back(&failed.state);
                    (failed.error, code)
                }
                Err(error) => match error.downcast::<LoginNeeded>() {
                    Ok(needed) => (needed.error, offered_login_needed_exit().unwrap_or(1)),
                    Err(error) => (error, 1),
                },
            };
            report(&*error);
            std::process::exit(code)
        }
    }
}

/// `error: ...` and its causes on stderr.
fn report(error: &(dyn std::error::Error + 'static)) {
    let mut message = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    let _ = writeln!(io::stderr(), "{message}");
}

/// Writes the state of a failed run for a host that offered to keep it, and
/// returns the exit code that asks it to; 1 (an ordinary failure) when the
/// host did not offer it or the state could not be written.
/// The exit code the host offers for a failed run whose state it should
/// keep (`AUTHPLUG_KEEP_STATE_EXIT`), if it offers one.
fn offered_keep_state_exit() -> Option<i32> {
    offered_exit(ENV_KEEP_STATE_EXIT)
}

/// An exit code a host offers in `variable` (rules 4 and 6), if it is one.
fn offered_exit(variable: &str) -> Option<i32> {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|code| (1..=255).contains(code))
}

/// The exit code the host offers for "a login is needed"
/// (`AUTHPLUG_LOGIN_NEEDED_EXIT`), if it offers one.
fn offered_login_needed_exit() -> Option<i32> {
    offered_exit(ENV_LOGIN_NEEDED_EXIT)
}

fn hand_back(state: &State) -> i32 {
    match offered_keep_state_exit() {
        Some(code) if !state.is_empty() => match write_state(state) {
            Ok(true) => code,
            Ok(false) => 1,
            Err(error) => {
                let _ = writeln!(
                    io::stderr(),
                    "warning: the new state could not be handed to the host ({error}), so it is lost"
                );
                1
            }
        },
        Some(_) => 1,
        None => {
            if !state.is_empty() {
                let _ = writeln!(
                    io::stderr(),
                    "warning: this host does not keep the state of a failed run \
                     (no AUTHPLUG_KEEP_STATE_EXIT), so what this run obtained is lost"
                );
            }
            1
        }
    }
}

/// Decides, once, whether fd 3 is a host's state pipe, marks it
/// close-on-exec (rule 9), and returns the answer. The first call decides:
/// make it before anything can open a file (that is what [`main`] and
/// [`main_with`] do first), since a plugin started by hand with fd 3 closed
/// would get the next file it opens as fd 3. So:
///
/// - fd 3 counts as the state pipe only if it is open for writing and is a
///   pipe or a socket, as a host's is (rule 4); a regular file, a terminal
///   or a read-only descriptor (an older `make`'s jobserver) is not, and the
///   state is never written to it;
/// - a closed fd 3 is taken by `/dev/null`, so that no file opened later
///   can get that number and receive the state.
///
/// Later calls return the first answer.
///
/// The info descriptor (rule 10) is decided at the same time, and the same
/// way, when the host offers it in `AUTHPLUG_INFO_FD`.
pub fn protect_state_fd() -> bool {
    let state = *STATE_FD_AT_START.get_or_init(|| match host_pipe(STATE_FD) {
        Some(is_pipe) => is_pipe,
        None => {
            reserve_state_fd();
            false
        }
    });
    INFO_FD_AT_START.get_or_init(decide_info_fd);
    state
}

static STATE_FD_AT_START: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
static INFO_FD_AT_START: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// `None` if `number` is closed; else whether it is a host's pipe: open
/// for writing, and a pipe or a socket. It is marked close-on-exec either
/// way: no program we start may inherit it.
fn host_pipe(number: i32) -> Option<bool> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    use nix::sys::stat::{fstat, SFlag};
    // SAFETY: the descriptor is only borrowed for these calls; whether it
    // is open is exactly what they find out (EBADF if not), and nothing
    // here closes it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(number) };
    let access = fcntl(fd, FcntlArg::F_GETFL).ok()?;
    let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let writable = matches!(
        OFlag::from_bits_truncate(access) & OFlag::O_ACCMODE,
        OFlag::O_WRONLY | OFlag::O_RDWR
    );
    let kind = fstat(fd).map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT);
    Some(writable && matches!(kind, Ok(SFlag::S_IFIFO) | Ok(SFlag::S_IFSOCK)))
}

/// Whether the host offered the info channel on fd 4 and it is there: the
/// variable names exactly that descriptor, and it is a host's pipe. A
/// variable with no such pipe (inherited from a plugin run further up, say)
/// is ignored, and fd 4 left alone.
fn decide_info_fd() -> bool {
    let offered = std::env::var(ENV_INFO_FD).is_ok_and(|v| v.trim() == INFO_FD.to_string());
    offered && host_pipe(INFO_FD) == Some(true)
}

/// Puts `/dev/null` (read-only) on a closed fd 3, so that the number stays
/// taken for the life of the process.
fn reserve_state_fd() {
    let Ok(null) = File::open("/dev/null") else {
        return;
    };
    let null = std::os::fd::OwnedFd::from(null);
    // SAFETY: fd 3 is closed (F_GETFL said EBADF) and nothing in this
    // process owns it; dup3 makes it a copy of /dev/null, close-on-exec.
    unsafe {
        let mut three = std::os::fd::OwnedFd::from_raw_fd(STATE_FD);
        let _ = nix::unistd::dup3(&null, &mut three, nix::fcntl::OFlag::O_CLOEXEC);
        // Held for the life of the process, never closed.
        std::mem::forget(three);
    }
}

/// Reads the request: the state from stdin (to EOF, at most the protocol's
/// limit) and the environment. A terminal on stdin means nobody is sending
/// state (the plugin was started by hand), so the state is empty.
pub fn read_request() -> io::Result<Request> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Ok(Request::from_env(State::default()));
    }
    let mut buf = SecretBuf::new(STATE_LIMIT);
    let mut chunk = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut stdin = stdin.lock();
    loop {
        let n = match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.len() + n > STATE_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the state on stdin is larger than the protocol's {STATE_LIMIT}-byte limit"
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Request::from_env(State::new(buf.into_vec())))
}

static STATE_FD_TAKEN: AtomicBool = AtomicBool::new(false);
static INFO_FD_TAKEN: AtomicBool = AtomicBool::new(false);

/// Whether the host offered the info channel (rule 10) and it was there
/// when the plugin started: then [`Response::expires_at`] reaches it.
pub fn host_takes_info() -> bool {
    protect_state_fd();
    INFO_FD_AT_START.get().copied().unwrap_or(false)
}

/// The expiry on fd 4 (then closed), for a host that offered it; nothing
/// otherwise (an epithet host, a plugin started by hand).
fn write_info(at: SystemTime) -> io::Result<()> {
    if !host_takes_info() || INFO_FD_TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    // SAFETY: fd 4 was the host's pipe at startup (checked above) and, by
    // the flag, this is the only place that ever takes ownership of it.
    let mut fd4 = unsafe { File::from_raw_fd(INFO_FD) };
    fd4.write_all(crate::expiry::info_line(at).as_bytes())
}

/// Writes the new state on fd 3 (and closes it), the token's expiry on fd
/// 4 for a host that offers it (rule 10), then the token and a newline on
/// stdout.
///
/// Without a host's fd 3 (the plugin was started by hand) a non-empty state
/// cannot be kept: that is said on stderr, and the token is still printed.
pub fn write_response(response: &Response) -> io::Result<()> {
    write_state(&response.state)?;
    // Rule 10: the info never decides the run (the state is written).
    if let Some(at) = response.expires_at {
        if let Err(error) = write_info(at) {
            let _ = writeln!(
                io::stderr(),
                "warning: the token's expiry could not be handed to the host ({error})"
            );
        }
    }
    let mut stdout = io::stdout().lock();
    if response.token.as_bytes().is_empty() {
        return Ok(());
    }
    stdout.write_all(response.token.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// `Ok(true)` once the state is on fd 3; `Ok(false)` when there is no fd 3
/// to write it to (said on stderr for a non-empty state).
fn write_state(state: &State) -> io::Result<bool> {
    // Only a state pipe that was there when the plugin started: a file the
    // plugin opened since could have the number now.
    if !protect_state_fd() || STATE_FD_TAKEN.swap(true, Ordering::SeqCst) {
        if !state.is_empty() {
            let _ = writeln!(
                io::stderr(),
                "warning: no state descriptor (fd 3) was there when this plugin started (a \
                 pipe open for writing), so the new state was not kept; run this plugin \
                 through a host such as `authplug run`"
            );
        }
        return Ok(false);
    }
    // SAFETY: fd 3 is open (checked above) and, by the flag, this is the
    // only place that ever takes ownership of it.
    let mut fd3 = unsafe { File::from_raw_fd(STATE_FD) };
    fd3.write_all(state.as_bytes())?;
    // Dropping closes fd 3: the host sees EOF and knows the state is whole.
    Ok(true)
}
