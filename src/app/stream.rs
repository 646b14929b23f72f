//! A streamed response body in transit: the queue between the code that writes it (a Python
//! handler, on any thread, or an `EventHub`) and the connection task that sends it.
//!
//! The queue is bounded in bytes, not pieces: once more than its budget (`stream_buffer`)
//! waits for a slow client, a writer that may block waits for room ([`StreamQueue::wait_for_room`],
//! called without the interpreter lock) and one that may not is refused
//! ([`StreamQueue::offer`], for the hub's fan-out). Bytes count against the budget until
//! the socket has taken them, so the memory a stream holds is at most its budget plus one
//! piece, whatever the client's speed.
//!
//! Either side can end it: the writer with [`StreamQueue::finish`] (the body is complete),
//! the connection with [`StreamQueue::mark_gone`] (the client left, a write failed or timed
//! out). A writer learns the latter at its next write, or at once if it is waiting.
//!
//! Plain `std` locking on the writer's side (a handler thread may block on a `Condvar`), a
//! `tokio::sync::Notify` on the connection's (its task must not block).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::http::encode::BodyFraming;

/// The client is gone: nothing written any more reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

/// What [`StreamQueue::offer`] did with a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Queuing it would pass the budget: the piece was not taken.
    Full,
    Gone,
}

/// What the connection took from the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// This many bytes were moved into the caller's list.
    Pieces(usize),
    /// The writer finished and everything was taken.
    End,
}

#[derive(Default)]
struct State {
    pieces: VecDeque<Bytes>,
    /// Bytes queued or taken but not yet released by the connection.
    held: usize,
    finished: bool,
    gone: bool,
    /// No connection will read this stream (HEAD, 204, 304): pieces are dropped as written.
    discard: bool,
}

pub struct StreamQueue {
    state: Mutex<State>,
    room: Condvar,
    /// `room` for a writer that waits on a tokio runtime (the inline mode's loop thread).
    room_async: Notify,
    ready: Notify,
    budget: usize,
}

/// Most bytes the connection takes for one write.
const MAX_BATCH: usize = 256 * 1024;
/// Most pieces the connection takes for one (vectored) write.
const MAX_BATCH_PIECES: usize = 64;

impl StreamQueue {
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(StreamQueue {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            room_async: Notify::new(),
            ready: Notify::new(),
            budget: budget.max(1),
        })
    }

    /// A queue nobody reads: for a response whose body is not sent (HEAD, 204, 304).
    pub fn discarding() -> Arc<Self> {
        let queue = StreamQueue::new(1);
        queue.lock().discard = true;
        queue
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Queues a piece whatever the budget (the writer then waits for room, if it may).
    pub fn push(&self, piece: Bytes) -> Result<(), Gone> {
        let mut state = self.lock();
        if state.gone {
            return Err(Gone);
        }
        if state.discard || piece.is_empty() {
            return Ok(());
        }
        state.held += piece.len();
        state.pieces.push_back(piece);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a piece only if it fits in the budget; never waits.
    pub fn offer(&self, piece: Bytes) -> Offer {
        let mut state = self.lock();
        if state.gone || state.finished {
            return Offer::Gone;
        }
        if state.discard || piece.is_empty() {
            return Offer::Queued;
        }
        if state.held + piece.len() > self.budget {
            return Offer::Full;
        }
        state.held += piece.len();
        state.pieces.push_back(piece);
        drop(state);
        self.ready.notify_one();
        Offer::Queued
    }

    /// Whether more than the budget waits for the client.
    pub fn over_budget(&self) -> bool {
        self.lock().held > self.budget
    }

    /// Waits up to `timeout` while more than the budget is held. `Ok(true)`: there is
    /// room; `Ok(false)`: the time passed first. Blocks the calling thread: never call it
    /// holding the interpreter lock or on a tokio task.
    pub fn wait_for_room(&self, timeout: Duration) -> Result<bool, Gone> {
        let state = self.lock();
        let (state, _) = self
            .room
            .wait_timeout_while(state, timeout, |state| {
                !state.gone && state.held > self.budget
            })
            .unwrap_or_else(PoisonError::into_inner);
        if state.gone {
            return Err(Gone);
        }
        Ok(state.held <= self.budget)
    }

    /// The body is complete; idempotent.
    pub fn finish(&self) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        drop(state);
        self.ready.notify_one();
    }

    pub fn is_finished(&self) -> bool {
        self.lock().finished
    }

    pub fn is_gone(&self) -> bool {
        self.lock().gone
    }

    /// The client is gone: wakes a waiting writer, frees what was queued.
    pub fn mark_gone(&self) {
        let mut state = self.lock();
        state.gone = true;
        state.pieces.clear();
        state.held = 0;
        drop(state);
        self.room.notify_all();
        self.room_async.notify_waiters();
    }

    /// Waits for pieces and moves a batch of them into `into`; the bytes stay counted
    /// against the budget until [`StreamQueue::release`].
    pub async fn take(&self, into: &mut Vec<Bytes>) -> Taken {
        loop {
            {
                let mut state = self.lock();
                if !state.pieces.is_empty() {
                    let mut bytes = 0;
                    while let Some(piece) = state.pieces.front() {
                        if bytes > 0
                            && (bytes + piece.len() > MAX_BATCH || into.len() >= MAX_BATCH_PIECES)
                        {
                            break;
                        }
                        bytes += piece.len();
                        if let Some(piece) = state.pieces.pop_front() {
                            into.push(piece);
                        }
                    }
                    return Taken::Pieces(bytes);
                }
                if state.finished || state.gone {
                    return Taken::End;
                }
            }
            // `notify_one` stores a permit when nobody waits, so a piece pushed between the
            // check above and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// The socket took `bytes` bytes of what [`StreamQueue::take`] handed out.
    pub fn release(&self, bytes: usize) {
        let mut state = self.lock();
        state.held = state.held.saturating_sub(bytes);
        let room = state.held <= self.budget;
        drop(state);
        if room {
            self.room.notify_all();
            self.room_async.notify_waiters();
        }
    }

    /// [`StreamQueue::wait_for_room`] as a future, for a writer that drives a runtime.
    pub async fn room(&self) -> Result<(), Gone> {
        loop {
            let notified = self.room_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.gone {
                    return Err(Gone);
                }
                if state.held <= self.budget {
                    return Ok(());
                }
            }
            notified.await;
        }
    }
}

/// The connection's end of a stream: dropping it (the connection closed before or while
/// sending it) tells the writer that the client is gone.
pub struct StreamReader {
    pub queue: Arc<StreamQueue>,
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.queue.mark_gone();
    }
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StreamReader")
    }
}

/// A body streamed after the head of an `Outgoing`.
#[derive(Debug)]
pub struct StreamBody {
    pub reader: StreamReader,
    /// `Chunked` (HTTP/1.1) or `UntilClose` (HTTP/1.0; the connection then closes).
    pub framing: BodyFraming,
    /// Send a comment line after this long without a piece (event streams).
    pub heartbeat: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn pieces_in_order_then_end() {
        let queue = StreamQueue::new(100);
        queue.push(Bytes::from_static(b"ab")).unwrap();
        queue.push(Bytes::from_static(b"")).unwrap();
        queue.push(Bytes::from_static(b"cd")).unwrap();
        queue.finish();
        queue.finish();
        let mut pieces = Vec::new();
        assert_eq!(block_on(queue.take(&mut pieces)), Taken::Pieces(4));
        assert_eq!(pieces, [&b"ab"[..], &b"cd"[..]]);
        queue.release(4);
        assert_eq!(block_on(queue.take(&mut pieces)), Taken::End);
    }

    #[test]
    fn budget_counts_until_released() {
        let queue = StreamQueue::new(4);
        assert_eq!(queue.offer(Bytes::from_static(b"abc")), Offer::Queued);
        assert_eq!(queue.offer(Bytes::from_static(b"de")), Offer::Full);
        queue.push(Bytes::from_static(b"de")).unwrap();
        assert!(queue.over_budget());
        assert_eq!(queue.wait_for_room(Duration::from_millis(1)), Ok(false));
        let mut pieces = Vec::new();
        block_on(queue.take(&mut pieces));
        assert!(
            queue.over_budget(),
            "taken but not yet written still counts"
        );
        queue.release(5);
        assert_eq!(queue.wait_for_room(Duration::from_millis(1)), Ok(true));
    }

    #[test]
    fn a_waiting_writer_learns_the_client_left() {
        let queue = StreamQueue::new(1);
        queue.push(Bytes::from_static(b"abc")).unwrap();
        let reader = StreamReader {
            queue: queue.clone(),
        };
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.wait_for_room(Duration::from_secs(30)))
        };
        drop(reader);
        assert_eq!(waiter.join().unwrap(), Err(Gone));
        assert_eq!(queue.push(Bytes::from_static(b"x")), Err(Gone));
        assert_eq!(queue.offer(Bytes::from_static(b"x")), Offer::Gone);
    }

    #[test]
    fn a_writer_on_another_thread_wakes_the_reader() {
        let queue = StreamQueue::new(1 << 20);
        let writer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    queue.push(Bytes::from_static(b"0123456789")).unwrap();
                }
                queue.finish();
            })
        };
        let total = block_on(async {
            let mut total = 0;
            let mut pieces = Vec::new();
            while let Taken::Pieces(bytes) = queue.take(&mut pieces).await {
                total += bytes;
                queue.release(bytes);
                pieces.clear();
            }
            total
        });
        writer.join().unwrap();
        assert_eq!(total, 10_000);
    }

    #[test]
    fn discarding_queue_takes_everything() {
        let queue = StreamQueue::discarding();
        for _ in 0..10 {
            queue.push(Bytes::from(vec![0u8; 1000])).unwrap();
        }
        assert!(!queue.over_budget());
    }
}
