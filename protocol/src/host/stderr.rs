//! Rule 5: stderr streamed line by line to the sink, and a bounded tail.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::exchange::ReadEnd;
use super::options::StderrSink;

/// Longest stderr line passed on; the rest of a longer line is dropped.
pub(super) const STDERR_LINE_LIMIT: usize = 4096;

/// Most of stderr read at once without waiting: once the plugin has exited,
/// a helper that inherited stderr may write on without end.
pub(super) const STDERR_READ_NOW_LIMIT: usize = 1024 * 1024;

/// Rule 5: streams stderr line by line to the sink and keeps a bounded tail.
pub(super) struct StderrPump<'a> {
    pub(super) pipe: ReadEnd,
    pub(super) line: Vec<u8>,
    pub(super) overlong: bool,
    pub(super) sink: Option<&'a StderrSink>,
    pub(super) tail: StderrTail,
}

impl<'a> StderrPump<'a> {
    pub(super) fn new(
        pipe: OwnedFd,
        sink: Option<&'a StderrSink>,
        tail_lines: usize,
    ) -> io::Result<Self> {
        Ok(StderrPump {
            pipe: ReadEnd::new(pipe)?,
            line: Vec::new(),
            overlong: false,
            sink,
            tail: StderrTail::new(tail_lines),
        })
    }

    /// Reads what has arrived; never fails the run (a closed or broken
    /// stderr just ends the stream).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) {
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let pipe = match self.pipe.registered() {
                Ok(Some(pipe)) => pipe,
                Ok(None) => return,
                Err(_) => return self.close(),
            };
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(pipe).poll_read(cx, &mut read) {
                Poll::Pending => return,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => self.split(read.filled()),
                Poll::Ready(_) => self.close(),
            }
        }
    }

    /// Reads what is in the pipe now, without waiting (and no more than
    /// `STDERR_READ_NOW_LIMIT`).
    pub(super) fn read_now(&mut self) {
        let mut chunk = [0u8; 4096];
        let mut budget = STDERR_READ_NOW_LIMIT;
        while budget > 0 {
            let Some(fd) = self.pipe.fd() else {
                return;
            };
            match nix::unistd::read(fd, &mut chunk) {
                Ok(0) => self.close(),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.split(&chunk[..n]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => self.close(),
            }
        }
    }

    /// After the plugin exited and its output was read: what is in the pipe
    /// already, then it closes. A helper holding stderr cannot hold up the
    /// run (rule 8).
    pub(super) fn finish(&mut self) {
        self.read_now();
        self.close();
    }

    pub(super) fn close(&mut self) {
        self.pipe = ReadEnd::Closed;
        if !self.line.is_empty() || self.overlong {
            self.emit();
        }
    }

    pub(super) fn split(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, complete) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            let room = STDERR_LINE_LIMIT.saturating_sub(self.line.len());
            self.line.extend_from_slice(&body[..body.len().min(room)]);
            self.overlong |= body.len() > room;
            if complete {
                self.emit();
            }
        }
    }

    pub(super) fn emit(&mut self) {
        if self.line.ends_with(b"\r") {
            self.line.pop();
        }
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.overlong {
            text.push_str(" [...]");
        }
        if let Some(sink) = self.sink {
            sink(&text);
        }
        self.tail.push(text);
        self.line.clear();
        self.overlong = false;
    }
}

pub(super) struct StderrTail {
    pub(super) lines: std::collections::VecDeque<String>,
    pub(super) max_lines: usize,
}

impl StderrTail {
    pub(super) fn new(max_lines: usize) -> Self {
        StderrTail {
            lines: std::collections::VecDeque::new(),
            max_lines,
        }
    }

    pub(super) fn push(&mut self, line: String) {
        if self.max_lines == 0 {
            return;
        }
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub(super) fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}
