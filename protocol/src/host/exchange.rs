//! The host's side of the plugin's pipes while it runs: stdin fed (rule
//! 2), stdout and fd 3 captured under their limits (rules 3 and 4), the
//! drain after the exit (rule 8); fd 4's info read on the side (rule 10).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::process::ExitStatus;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;

use super::error::Failure;
use super::info::InfoPump;
use super::options::RunOptions;
use super::stderr::StderrPump;
use crate::secret::SecretBuf;
use crate::spawn::{receiver, sender, set_nonblocking, HostPipes, PluginProcess};
use crate::{State, STATE_LIMIT, TOKEN_LIMIT};

/// How long a plugin may run before the host watches its output pipes,
/// when it had nothing to write to stdin (it all fit in the pipe). Most
/// plugins are done by then: their whole output sits in the pipes when they
/// exit and is read in one go, with one wake-up (the exit) instead of one
/// per pipe, and no pipe ever registered with the runtime. The cost: a
/// plugin that fills a pipe (64 KiB) in that time waits for the rest of
/// it, and stderr lines written in it reach the sink up to that much later.
pub(super) const QUIET_START: Duration = Duration::from_millis(5);

/// The host's side of the plugin's pipes: stdin fed (rule 2), stdout and
/// fd 3 read under their limits (rules 3 and 4), stderr streamed (rule 5),
/// until the plugin exits and its output is drained (rule 8).
pub(super) struct Exchange<'a> {
    pub(super) stdout: Capture,
    pub(super) state: Capture,
    pub(super) stderr: StderrPump<'a>,
    pub(super) info: InfoPump,
    pub(super) stdin: Feeder<'a>,
}

impl<'a> Exchange<'a> {
    pub(super) fn new(
        pipes: HostPipes,
        state_pipe: OwnedFd,
        info_pipe: Option<OwnedFd>,
        state: &'a State,
        options: &'a RunOptions,
    ) -> io::Result<Exchange<'a>> {
        if state.len() > DEFAULT_PIPE_SIZE {
            enlarge_pipe(&pipes.stdin, state.len());
        }
        // The state first: the plugin can start reading it at once.
        let stdin = Feeder::new(pipes.stdin, state.as_bytes())?;
        Ok(Exchange {
            stdout: Capture::new(pipes.stdout, TOKEN_LIMIT, || Failure::TokenTooLarge)?,
            state: Capture::new(state_pipe, STATE_LIMIT, || Failure::StateTooLarge)?,
            stderr: StderrPump::new(
                pipes.stderr,
                options.stderr_sink.as_ref(),
                options.stderr_tail_lines,
            )?,
            info: InfoPump::new(info_pipe)?,
            stdin,
        })
    }

    /// Until the plugin has exited and its stdout and fd 3 are read; fails
    /// at once when either passes its limit.
    pub(super) async fn converse(
        &mut self,
        plugin: &mut PluginProcess,
        drain_window: Duration,
    ) -> Result<ExitStatus, Failure> {
        let quiet_exit = if self.stdin.is_done() {
            tokio::time::timeout(QUIET_START, plugin.exited())
                .await
                .ok()
        } else {
            None
        };
        let status = match quiet_exit {
            Some(status) => status?,
            None => std::future::poll_fn(|cx| self.poll_until_exit(cx, plugin)).await?,
        };
        // Rule 8: the run ends when the plugin exits. A helper it started
        // may hold stdin unread: feeding it stops here.
        self.stdin.stop();
        if !self.drain(drain_window).await? {
            // Its leader is not reaped yet, so the group id is still the
            // plugin's own.
            plugin.signal(Signal::SIGKILL);
            if !self.drain(drain_window).await? {
                return Err(Failure::LeakedDescriptors);
            }
        }
        // stderr and the info decide nothing: what is there now is kept,
        // then they close.
        self.stderr.finish();
        self.info.finish();
        Ok(status)
    }

    pub(super) fn poll_until_exit(
        &mut self,
        cx: &mut Context<'_>,
        plugin: &mut PluginProcess,
    ) -> Poll<Result<ExitStatus, Failure>> {
        // The output first: it usually reaches EOF just before the plugin
        // exits, and then one waitid may confirm the exit.
        let output = self.poll_output(cx)?;
        self.stderr.poll(cx);
        self.info.poll(cx);
        self.stdin.poll(cx);
        if output.is_ready() {
            if let Some(status) = plugin.try_exit()? {
                return Poll::Ready(Ok(status));
            }
        }
        plugin.poll_exit(cx).map_err(Failure::Io)
    }

    /// Waits up to `window` for stdout and fd 3 to reach EOF; `false` if
    /// they did not.
    pub(super) async fn drain(&mut self, window: Duration) -> Result<bool, Failure> {
        // Usually the plugin's exit closed them and all that is left is in
        // the pipes: read it at once, with no timer and no runtime.
        self.stderr.read_now();
        let stdout = self.stdout.read_now()?;
        let state = self.state.read_now()?;
        if stdout && state {
            return Ok(true);
        }
        let drained = std::future::poll_fn(|cx| self.poll_drain(cx));
        match tokio::time::timeout(window, drained).await {
            Ok(drained) => drained.map(|()| true),
            Err(_elapsed) => Ok(false),
        }
    }

    pub(super) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.stderr.poll(cx);
        self.info.poll(cx);
        self.poll_output(cx)
    }

    /// Ready once stdout and fd 3 are both at EOF.
    pub(super) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        let stdout = self.stdout.poll(cx)?;
        let state = self.state.poll(cx)?;
        if stdout.is_ready() && state.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    pub(super) fn into_outputs(self) -> (SecretBuf, SecretBuf, String, InfoPump) {
        (
            self.stdout.bytes,
            self.state.bytes,
            self.stderr.tail.text(),
            self.info,
        )
    }
}

/// One of the host's read ends: read directly until it is worth waking up
/// for, then registered with the runtime.
pub(super) enum ReadEnd {
    Direct(OwnedFd),
    Registered(pipe::Receiver),
    /// At EOF, or no longer read.
    Closed,
}

impl ReadEnd {
    pub(super) fn new(fd: OwnedFd) -> io::Result<ReadEnd> {
        set_nonblocking(&fd)?;
        Ok(ReadEnd::Direct(fd))
    }

    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            ReadEnd::Direct(fd) => Some(fd.as_fd()),
            ReadEnd::Registered(receiver) => Some(receiver.as_fd()),
            ReadEnd::Closed => None,
        }
    }

    /// The registered pipe, registering it first if need be; `None` once
    /// closed.
    pub(super) fn registered(&mut self) -> io::Result<Option<&mut pipe::Receiver>> {
        if let ReadEnd::Direct(_) = self {
            let ReadEnd::Direct(fd) = std::mem::replace(self, ReadEnd::Closed) else {
                unreachable!("matched just above");
            };
            *self = ReadEnd::Registered(receiver(fd)?);
        }
        Ok(match self {
            ReadEnd::Registered(receiver) => Some(receiver),
            _ => None,
        })
    }
}

/// An output pipe read to EOF; fails as soon as more than `limit` bytes
/// arrive (rules 3 and 4).
pub(super) struct Capture {
    pub(super) pipe: ReadEnd,
    pub(super) bytes: SecretBuf,
    pub(super) limit: usize,
    pub(super) over_limit: fn() -> Failure,
}

impl Capture {
    pub(super) fn new(
        pipe: OwnedFd,
        limit: usize,
        over_limit: fn() -> Failure,
    ) -> io::Result<Capture> {
        Ok(Capture {
            pipe: ReadEnd::new(pipe)?,
            // One byte of room past the limit, to see that it was passed.
            bytes: SecretBuf::new(limit + 1),
            limit,
            over_limit,
        })
    }

    /// Reads what is in the pipe now, without waiting; `true` at EOF.
    pub(super) fn read_now(&mut self) -> Result<bool, Failure> {
        while let Some(fd) = self.pipe.fd() {
            match self.bytes.read_available(fd) {
                Ok(0) => self.pipe = ReadEnd::Closed,
                Ok(_) if self.bytes.len() > self.limit => return Err((self.over_limit)()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(Failure::Io(error)),
            }
        }
        Ok(true)
    }

    /// Ready at EOF.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        let Some(pipe) = self.pipe.registered()? else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if ready!(self.bytes.poll_read_from(cx, pipe))? == 0 {
                self.pipe = ReadEnd::Closed;
                return Poll::Ready(Ok(()));
            }
            if self.bytes.len() > self.limit {
                return Poll::Ready(Err((self.over_limit)()));
            }
        }
    }
}

/// Rule 2: the state, then EOF. A plugin that never reads stdin is fine, so
/// a broken pipe is not an error; nor is anything else here, since the
/// plugin's exit code says whether it got what it needed.
pub(super) struct Feeder<'a> {
    pub(super) pipe: Feed,
    pub(super) rest: &'a [u8],
}

pub(super) enum Feed {
    Done,
    /// Not registered with the runtime: a state that fits in the pipe is
    /// written at once and never needs to be.
    Direct(OwnedFd),
    Registered(pipe::Sender),
}

impl<'a> Feeder<'a> {
    pub(super) fn new(stdin: OwnedFd, state: &'a [u8]) -> io::Result<Feeder<'a>> {
        let mut feeder = Feeder {
            pipe: Feed::Done,
            rest: state,
        };
        // Empty state: closing stdin at once is all rule 2 asks.
        if !state.is_empty() {
            set_nonblocking(&stdin)?;
            feeder.pipe = Feed::Direct(stdin);
            feeder.write_directly();
        }
        Ok(feeder)
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.pipe, Feed::Done)
    }

    pub(super) fn write_directly(&mut self) {
        let Feed::Direct(stdin) = &self.pipe else {
            return;
        };
        loop {
            match nix::unistd::write(stdin, self.rest) {
                Ok(written) => {
                    self.rest = &self.rest[written..];
                    if self.rest.is_empty() || written == 0 {
                        self.pipe = Feed::Done;
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    self.pipe = Feed::Done;
                    return;
                }
            }
        }
    }

    pub(super) fn poll(&mut self, cx: &mut Context<'_>) {
        loop {
            match &mut self.pipe {
                Feed::Done => return,
                Feed::Direct(_) => {
                    let Feed::Direct(stdin) = std::mem::replace(&mut self.pipe, Feed::Done) else {
                        return;
                    };
                    match sender(stdin) {
                        Ok(stdin) => self.pipe = Feed::Registered(stdin),
                        Err(_) => return,
                    }
                }
                Feed::Registered(stdin) => match Pin::new(stdin).poll_write(cx, self.rest) {
                    Poll::Pending => return,
                    Poll::Ready(Ok(written)) if written > 0 => {
                        self.rest = &self.rest[written..];
                        if self.rest.is_empty() {
                            // Closing it is the EOF.
                            self.pipe = Feed::Done;
                        }
                    }
                    Poll::Ready(_) => self.pipe = Feed::Done,
                },
            }
        }
    }

    pub(super) fn stop(&mut self) {
        self.pipe = Feed::Done;
    }
}

/// Linux's default pipe buffer.
pub(super) const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Fewer, larger hand-overs between host and plugin for a large state: up
/// to 1 MiB (the kernel's default ceiling for unprivileged processes). A
/// refusal (that ceiling, or the per-user pipe budget) just leaves the pipe
/// as it was.
pub(super) fn enlarge_pipe(pipe: &impl std::os::fd::AsFd, wanted: usize) {
    #[cfg(target_os = "linux")]
    {
        let size = wanted.min(1024 * 1024) as libc::c_int;
        let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (pipe, wanted);
}
