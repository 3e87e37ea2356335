//! Rule 10: the info channel. The plugin may say when its token expires
//! on fd 4; the host reads it without ever being held up by it, and judges
//! it against the token's own `exp`.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::io::{AsyncRead, ReadBuf};

use super::exchange::ReadEnd;
use crate::expiry::{self, InfoProblem, INFO_LIMIT};

/// The host's end of the info pipe: read as it comes, so that a plugin
/// writing more than a pipe holds is never blocked (what passes the limit
/// is read and dropped), and never waited for: a helper that inherited fd
/// 4 holds nothing up (rule 8 names only stdout and fd 3).
pub(super) struct InfoPump {
    pub(super) pipe: ReadEnd,
    pub(super) bytes: Vec<u8>,
    pub(super) too_large: bool,
}

impl InfoPump {
    /// `None` when the channel is not offered: nothing to read.
    pub(super) fn new(pipe: Option<OwnedFd>) -> io::Result<InfoPump> {
        Ok(InfoPump {
            pipe: match pipe {
                Some(pipe) => ReadEnd::new(pipe)?,
                None => ReadEnd::Closed,
            },
            bytes: Vec::new(),
            too_large: false,
        })
    }

    pub(super) fn poll(&mut self, cx: &mut Context<'_>) {
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let pipe = match self.pipe.registered() {
                Ok(Some(pipe)) => pipe,
                Ok(None) => return,
                Err(_) => return self.pipe = ReadEnd::Closed,
            };
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(pipe).poll_read(cx, &mut read) {
                Poll::Pending => return,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => self.keep(read.filled()),
                Poll::Ready(_) => return self.pipe = ReadEnd::Closed,
            }
        }
    }

    /// Once the plugin has exited: what is in the pipe now (everything it
    /// wrote before it exited), then the pipe closes. Bounded, since a
    /// helper may write on.
    pub(super) fn finish(&mut self) {
        let mut chunk = [0u8; 4096];
        let mut budget = 2 * INFO_LIMIT;
        while budget > 0 {
            let Some(fd) = self.pipe.fd() else {
                return;
            };
            match nix::unistd::read(fd, &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.keep(&chunk[..n]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        self.pipe = ReadEnd::Closed;
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = INFO_LIMIT.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.too_large |= bytes.len() > room;
    }
}

/// What the host makes of a successful run's info and token (rule 10).
pub(super) struct Judged {
    pub(super) expires_at: Option<SystemTime>,
    pub(super) reported: Option<SystemTime>,
    pub(super) problem: Option<InfoProblem>,
}

/// The token's expiry: the earlier of the reported one and the JWT's
/// `exp`. Info that cannot be used is reported and makes the lifetime
/// unknown, or due at once for a time already past; never longer.
pub(super) fn judge_info(pump: &InfoPump, token: &[u8], now: SystemTime) -> Judged {
    let read = if pump.too_large {
        Err(InfoProblem::TooLarge)
    } else {
        expiry::read_info(&pump.bytes, now)
    };
    let (reported, problem) = match read {
        Ok(reported) => (reported, None),
        Err(problem) => (problem.expiry_to_use(), Some(problem)),
    };
    Judged {
        expires_at: expiry::earlier(reported, expiry::jwt_expiry(token)),
        reported,
        problem,
    }
}
