//! Answers made on a loop thread reach their connections together, from inside the runtime.
//!
//! A connection waits for its handler's answer on a oneshot channel. Sent from a thread that
//! is not inside the runtime's `block_on`, each answer's wake-up goes through tokio's inject
//! queue and writes the I/O driver's eventfd: a system call per answer, which the driver
//! then has to read back. A loop thread (the inline mode's, and the default mode's driver)
//! drives the runtime itself right after its round of handlers, so the answers made during
//! the round are held in a batch and sent at the start of the next round of I/O, from inside
//! `block_on`, where a wake-up is a push on the scheduler's local run queue.
//!
//! The batch belongs to the server, not to the thread: in the default mode, when a handler
//! runs long and the watchdog hands the runtime to another thread, the answers made before
//! it in the same round are sent by whoever drives next, without waiting for the long one.
//! The asyncio loop's thread holds the answers of its coroutine handlers' steps the same
//! way, and hands each batch to the runtime with one wake-up (`event_loop`). Answers made
//! anywhere else (a response sent later from a thread of the user's, the handler pool of
//! `io_threads > 1`) are sent at once, as before.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use crate::app::exchange::{Outgoing, ReplySender};

/// The answers of a round, not yet sent.
#[derive(Default)]
pub struct ReplyBatch {
    held: Mutex<Vec<(ReplySender, Outgoing)>>,
}

impl ReplyBatch {
    pub fn new() -> Arc<ReplyBatch> {
        Arc::new(ReplyBatch::default())
    }

    /// Sends every answer held. Call it first thing inside `block_on` when a round of
    /// driving the runtime follows, or from anywhere when none does (then the wake-ups are
    /// remote, as without a batch).
    pub fn deliver(&self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        for (reply, outgoing) in held.drain(..) {
            // The connection may have gone away meanwhile; then there is nobody to tell.
            let _ = reply.send(outgoing);
        }
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn hold(&self, reply: ReplySender, outgoing: Outgoing) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((reply, outgoing));
    }
}

thread_local! {
    /// The batch of the round this thread is running, if it runs one.
    static HOLDING: RefCell<Option<Arc<ReplyBatch>>> = const { RefCell::new(None) };
}

/// Runs `round` (a loop thread's handlers) with `batch` holding the answers they make.
pub fn holding<R>(batch: &Arc<ReplyBatch>, round: impl FnOnce() -> R) -> R {
    let outer = HOLDING.with(|slot| slot.borrow_mut().replace(batch.clone()));
    let result = round();
    HOLDING.with(|slot| *slot.borrow_mut() = outer);
    result
}

/// The batch of the round this thread runs, if any.
pub fn current() -> Option<Arc<ReplyBatch>> {
    HOLDING.with(|slot| slot.borrow().clone())
}

/// Hands `outgoing` to its connection: held for the next round of I/O on a loop thread,
/// sent at once elsewhere.
pub fn reply(reply: ReplySender, outgoing: Outgoing) {
    let unsent = HOLDING.with(|slot| match &*slot.borrow() {
        Some(batch) => {
            batch.hold(reply, outgoing);
            None
        }
        None => Some((reply, outgoing)),
    });
    if let Some((reply, outgoing)) = unsent {
        let _ = reply.send(outgoing);
    }
}
