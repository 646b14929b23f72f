//! A streamed request body in transit (`stream_body = True`): the queue between the
//! connection task that reads it from the socket and the handler that reads it from Python.
//!
//! It mirrors [`crate::app::stream`] the other way round. The connection waits for the
//! handler's first read ([`BodyQueue::demanded`]; `100 Continue` is sent only then), then
//! pushes pieces as they arrive; once more than the budget (`stream_buffer`) waits for the
//! handler, [`BodyQueue::push`] waits too, and the connection stops reading the socket: the
//! client is held back by TCP flow control, and the memory a body holds is at most its
//! budget plus one piece, whatever its size.
//!
//! The connection ends it with [`BodyQueue::complete`], or [`BodyQueue::fail`] (a stall, a
//! body too large or malformed, the client gone): the handler's next read learns why. The
//! handler's side ends it by dropping its [`BodyReader`] (the request object went away):
//! the connection then discards what is left of the body.
//!
//! Plain `std` locking on the handler's side (a handler thread blocks on a `Condvar`, without
//! the interpreter lock), `tokio::sync::Notify` on the connection's.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::http::error::RequestError;

/// Why a body cannot be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The server refused the rest of it (a stall, too large, malformed): the status and
    /// reason the client is answered with if the handler lets the error escape.
    Refused(RequestError),
    /// The client closed the connection before sending all of it.
    Gone,
}

/// What a read of the body gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Piece(Bytes),
    /// The whole body has been read.
    End,
    /// Nothing arrived within the wait (only from [`BodyQueue::next_blocking`]).
    Waiting,
}

/// The handler gave the body up: the connection discards the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abandoned;

#[derive(Default)]
struct State {
    pieces: VecDeque<Bytes>,
    /// Bytes queued and not yet read by the handler.
    held: usize,
    /// The handler has asked for the body at least once.
    demanded: bool,
    complete: bool,
    failed: Option<BodyError>,
    abandoned: bool,
}

pub struct BodyQueue {
    state: Mutex<State>,
    /// Wakes a handler thread waiting for a piece.
    arrived: Condvar,
    /// The same, for a reader that drives a runtime (the inline mode's loop thread).
    arrived_async: Notify,
    /// Wakes the connection: first demand, room in the budget, or abandonment.
    wanted: Notify,
    budget: usize,
}

impl std::fmt::Debug for BodyQueue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BodyQueue")
    }
}

impl BodyQueue {
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(BodyQueue {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            arrived_async: Notify::new(),
            wanted: Notify::new(),
            budget: budget.max(1),
        })
    }

    /// A queue that already holds all of `body` (a form parsed from a body read whole).
    pub fn filled(body: Bytes) -> Arc<Self> {
        let queue = BodyQueue::new(body.len());
        {
            let mut state = queue.lock();
            state.held = body.len();
            if !body.is_empty() {
                state.pieces.push_back(body);
            }
            state.complete = true;
        }
        queue
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_reader(&self) {
        self.arrived.notify_all();
        self.arrived_async.notify_waiters();
    }

    // The handler's side.

    /// Takes the next piece from `state`, or says why there is none; `None`: wait.
    fn take(&self, state: &mut State) -> Option<Result<Read, BodyError>> {
        if !state.demanded {
            state.demanded = true;
            self.wanted.notify_one();
        }
        if let Some(piece) = state.pieces.pop_front() {
            let was_over = state.held > self.budget;
            state.held -= piece.len();
            if was_over || state.held <= self.budget {
                self.wanted.notify_one();
            }
            return Some(Ok(Read::Piece(piece)));
        }
        if let Some(error) = state.failed {
            return Some(Err(error));
        }
        if state.complete {
            return Some(Ok(Read::End));
        }
        None
    }

    /// The next piece, waiting up to `timeout` for it. Blocks the calling thread: never call
    /// it holding the interpreter lock or on a tokio task.
    pub fn next_blocking(&self, timeout: Duration) -> Result<Read, BodyError> {
        let mut state = self.lock();
        if let Some(read) = self.take(&mut state) {
            return read;
        }
        let (mut state, _) = self
            .arrived
            .wait_timeout_while(state, timeout, |state| {
                state.pieces.is_empty() && state.failed.is_none() && !state.complete
            })
            .unwrap_or_else(PoisonError::into_inner);
        self.take(&mut state).unwrap_or(Ok(Read::Waiting))
    }

    /// [`BodyQueue::next_blocking`] as a future, for a reader that drives a runtime.
    pub async fn next(&self) -> Result<Read, BodyError> {
        loop {
            let notified = self.arrived_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(read) = self.take(&mut self.lock()) {
                return read;
            }
            notified.await;
        }
    }

    /// The handler gives the body up; what is queued is freed. Idempotent.
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.abandoned = true;
        state.pieces.clear();
        state.held = 0;
        drop(state);
        self.wanted.notify_one();
    }

    // The connection's side.

    /// Waits until the handler first reads (`Ok`) or gives the body up unread.
    pub async fn demanded(&self) -> Result<(), Abandoned> {
        loop {
            {
                let state = self.lock();
                if state.abandoned {
                    return Err(Abandoned);
                }
                if state.demanded {
                    return Ok(());
                }
            }
            // `notify_one` stores a permit when nobody waits, so nothing is missed.
            self.wanted.notified().await;
        }
    }

    /// Queues a piece, then waits while more than the budget waits for the handler.
    /// `Ok(true)` when it had to wait (the time the client was held back is not its own).
    pub async fn push(&self, piece: Bytes) -> Result<bool, Abandoned> {
        {
            let mut state = self.lock();
            if state.abandoned {
                return Err(Abandoned);
            }
            if !piece.is_empty() {
                state.held += piece.len();
                state.pieces.push_back(piece);
            }
        }
        self.wake_reader();
        let mut waited = false;
        loop {
            {
                let state = self.lock();
                if state.abandoned {
                    return Err(Abandoned);
                }
                if state.held <= self.budget {
                    return Ok(waited);
                }
            }
            waited = true;
            self.wanted.notified().await;
        }
    }

    /// Whether the handler gave the body up.
    pub fn is_abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// The whole body has been queued.
    pub fn complete(&self) {
        self.lock().complete = true;
        self.wake_reader();
    }

    /// The rest of the body will not come: the handler's next read (after what is queued)
    /// raises `error`.
    pub fn fail(&self, error: BodyError) {
        let mut state = self.lock();
        if !state.complete && state.failed.is_none() {
            state.failed = Some(error);
        }
        drop(state);
        self.wake_reader();
    }
}

/// The handler's end of a body: dropping it (the request object is gone) gives the body
/// up, and the connection discards the rest.
#[derive(Debug)]
pub struct BodyReader {
    pub queue: Arc<BodyQueue>,
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        self.queue.abandon();
    }
}

/// A request's body, as the handler gets it.
#[derive(Debug)]
pub enum RequestBody {
    /// Read whole before the handler ran.
    Whole(Bytes),
    /// Read as the handler reads it (`stream_body = True`).
    Streamed(Arc<BodyQueue>),
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Whole(Bytes::new())
    }
}

impl RequestBody {
    /// The whole body, or `None` when it is streamed.
    pub fn whole(&self) -> Option<&Bytes> {
        match self {
            RequestBody::Whole(bytes) => Some(bytes),
            RequestBody::Streamed(_) => None,
        }
    }
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
        let queue = BodyQueue::new(100);
        block_on(async {
            queue.push(Bytes::from_static(b"ab")).await.unwrap();
            queue.push(Bytes::from_static(b"cd")).await.unwrap();
        });
        queue.complete();
        let wait = Duration::from_millis(1);
        assert_eq!(
            queue.next_blocking(wait),
            Ok(Read::Piece(Bytes::from_static(b"ab")))
        );
        assert_eq!(
            queue.next_blocking(wait),
            Ok(Read::Piece(Bytes::from_static(b"cd")))
        );
        assert_eq!(queue.next_blocking(wait), Ok(Read::End));
    }

    #[test]
    fn nothing_yet_is_waiting_and_demands() {
        let queue = BodyQueue::new(100);
        assert_eq!(
            queue.next_blocking(Duration::from_millis(1)),
            Ok(Read::Waiting)
        );
        assert_eq!(block_on(queue.demanded()), Ok(()));
    }

    #[test]
    fn push_waits_for_the_reader_past_the_budget() {
        let queue = BodyQueue::new(4);
        let reader = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut total = 0;
                loop {
                    match queue.next_blocking(Duration::from_secs(5)) {
                        Ok(Read::Piece(piece)) => total += piece.len(),
                        Ok(Read::End) => return total,
                        Ok(Read::Waiting) => {}
                        Err(error) => panic!("{error:?}"),
                    }
                }
            })
        };
        block_on(async {
            for _ in 0..1000 {
                queue.push(Bytes::from_static(b"0123456789")).await.unwrap();
                assert!(queue.lock().held <= 10, "one piece past the budget at most");
            }
        });
        queue.complete();
        assert_eq!(reader.join().unwrap(), 10_000);
    }

    #[test]
    fn a_failure_comes_after_the_queued_pieces() {
        let queue = BodyQueue::new(100);
        block_on(queue.push(Bytes::from_static(b"ab"))).unwrap();
        queue.fail(BodyError::Gone);
        let wait = Duration::from_millis(1);
        assert!(matches!(queue.next_blocking(wait), Ok(Read::Piece(_))));
        assert_eq!(queue.next_blocking(wait), Err(BodyError::Gone));
    }

    #[test]
    fn dropping_the_reader_abandons_and_frees() {
        let queue = BodyQueue::new(1);
        let reader = BodyReader {
            queue: queue.clone(),
        };
        let pushing = {
            let queue = queue.clone();
            std::thread::spawn(move || block_on(queue.push(Bytes::from_static(b"abc"))))
        };
        drop(reader);
        assert_eq!(pushing.join().unwrap(), Err(Abandoned));
        assert_eq!(block_on(queue.demanded()), Err(Abandoned));
        assert_eq!(queue.lock().held, 0);
    }
}
