//! Who is connected, and how much unfinished input they hold: at most
//! [`MAX_CONNECTIONS`] at once (the oldest idle one dropped for a new one)
//! and [`MAX_BUFFERED`] bytes of unfinished lines in all.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UnixStream;

use crate::wire::{ErrorKind, Response};

use std::collections::VecDeque;

use super::lines::send;
use super::{MAX_BUFFERED, MAX_CONNECTIONS};

/// Who is connected, oldest first, and the bytes their unfinished request
/// lines hold.
#[derive(Default)]
pub(super) struct Admission {
    connections: Mutex<VecDeque<Connection>>,
    buffered: AtomicUsize,
}

pub(super) struct Connection {
    /// Set while the connection waits for a request (it has none under way).
    waiting: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl Admission {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Connection>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more: at the cap, the oldest connection that is waiting
    /// for a request is dropped. `None` if every one is in the middle of a
    /// request (a run of a plugin that many wait for): the new one is
    /// refused rather than a waiter cut off.
    pub(super) fn make_room(&self) -> Option<Arc<AtomicBool>> {
        let mut connections = self.lock();
        connections.retain(|c| !c.task.is_finished());
        if connections.len() >= MAX_CONNECTIONS {
            let idle = connections
                .iter()
                .position(|c| c.waiting.load(Ordering::SeqCst))?;
            if let Some(dropped) = connections.remove(idle) {
                dropped.task.abort();
                tracing::debug!("dropped the oldest idle connection for a new one");
            }
        }
        Some(Arc::new(AtomicBool::new(true)))
    }

    pub(super) fn add(&self, waiting: Arc<AtomicBool>, task: tokio::task::AbortHandle) {
        self.lock().push_back(Connection { waiting, task });
    }
}

/// One connection's seat in the [`Admission`]: whether it waits for a
/// request, and the bytes its unfinished line holds (given back on drop,
/// also when the task is aborted).
pub(super) struct Seat {
    admission: Arc<Admission>,
    waiting: Arc<AtomicBool>,
    holding: usize,
}

impl Seat {
    pub(super) fn new(admission: Arc<Admission>, waiting: Arc<AtomicBool>) -> Seat {
        Seat {
            admission,
            waiting,
            holding: 0,
        }
    }

    pub(super) fn waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }

    /// Takes `more` bytes from the budget; `false` if that would pass it.
    pub(super) fn hold(&mut self, more: usize) -> bool {
        let before = self.admission.buffered.fetch_add(more, Ordering::SeqCst);
        if before + more > MAX_BUFFERED {
            self.admission.buffered.fetch_sub(more, Ordering::SeqCst);
            return false;
        }
        self.holding += more;
        true
    }

    pub(super) fn release(&mut self) {
        self.admission
            .buffered
            .fetch_sub(self.holding, Ordering::SeqCst);
        self.holding = 0;
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every connection is busy with a request: say so and close.
pub(super) async fn refuse_busy(stream: UnixStream) {
    let (_, mut writer) = stream.into_split();
    let refusal = Response::error(
        ErrorKind::Busy,
        format!("the agent is serving {MAX_CONNECTIONS} requests already; try again in a moment"),
    );
    let _ = send(&mut writer, &refusal).await;
}
