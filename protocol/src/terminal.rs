//! Lines the user types (or pastes) on the controlling terminal, for a
//! plugin that asks on `/dev/tty` (rule 7: stdin carries the state) and for
//! a client that relays what the user pastes.
//!
//! Read on a thread of its own, so an async program is not blocked; only
//! while this process's group is the terminal's foreground (a read from the
//! background would stop the process with SIGTTIN), and only until the
//! reader is dropped: a program that goes on to run a command on the same
//! terminal (`authplug exec`) must not steal its input.
//!
//! What this is not: a line editor. The terminal's own line discipline
//! edits the line (and on Linux cuts it at 4095 bytes).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use zeroize::Zeroize;

/// How often the reader looks whether it was dropped or lost the
/// foreground.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A line longer than this is dropped whole (with a note to the callback):
/// no pasted address is that long.
const LINE_LIMIT: usize = 64 * 1024;

/// What the callback wants after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read another line.
    More,
    /// Stop reading.
    Done,
}

/// A line read from the terminal; wiped once the callback returns (a
/// pasted address may carry a login's code).
#[derive(Debug)]
pub enum Line<'a> {
    /// The line, without its newline and surrounding blanks.
    Text(&'a str),
    /// Longer than the reader takes, or not UTF-8: nothing of it is kept.
    Unreadable,
}

/// Reads the controlling terminal until dropped or until the callback says
/// [`Next::Done`]. Dropping it stops the reading thread and waits for it
/// (about a tenth of a second, or until the callback under way returns),
/// so nothing is read after that.
#[derive(Debug)]
pub struct TerminalLines {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TerminalLines {
    /// Starts reading lines, each handed to `on_line` on the reading
    /// thread. `None` when this process has no controlling terminal (a
    /// daemon, a pipeline run by cron) or is not in its foreground group.
    pub fn start<F>(on_line: F) -> Option<TerminalLines>
    where
        F: FnMut(Line<'_>) -> Next + Send + 'static,
    {
        let tty = File::options().read(true).open("/dev/tty").ok()?;
        if !in_foreground(&tty) {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("terminal-lines".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || read_lines(tty, &stop, on_line)
            })
            .ok()?;
        Some(TerminalLines {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TerminalLines {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn in_foreground(tty: &File) -> bool {
    nix::unistd::tcgetpgrp(tty.as_fd()).is_ok_and(|group| group == nix::unistd::getpgrp())
}

fn read_lines<F>(mut tty: File, stop: &AtomicBool, mut on_line: F)
where
    F: FnMut(Line<'_>) -> Next,
{
    let mut pending: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut chunk = [0u8; 4096];
    let timeout = PollTimeout::try_from(POLL_INTERVAL).unwrap_or(PollTimeout::NONE);
    while !stop.load(Ordering::SeqCst) {
        // Checked before each read: the user may have put the process in
        // the background meanwhile (Ctrl-Z, bg).
        if !in_foreground(&tty) {
            std::thread::sleep(POLL_INTERVAL);
            continue;
        }
        let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if !revents.contains(PollFlags::POLLIN) {
            // POLLHUP or POLLERR: the terminal is gone.
            break;
        }
        let read = match tty.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&chunk[..read]);
        chunk[..read].zeroize();
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = pending.drain(..=end).collect();
            let next = if overlong {
                overlong = false;
                on_line(Line::Unreadable)
            } else {
                match std::str::from_utf8(&line) {
                    Ok(text) => on_line(Line::Text(text.trim())),
                    Err(_) => on_line(Line::Unreadable),
                }
            };
            line.zeroize();
            if next == Next::Done {
                pending.zeroize();
                return;
            }
        }
        if pending.len() > LINE_LIMIT {
            pending.zeroize();
            pending.clear();
            overlong = true;
        }
    }
    pending.zeroize();
}
