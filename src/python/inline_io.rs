//! The inline mode's one thread (`handler_threads=0`) runs the handlers *and* drives every
//! connection. A handler that streams would deadlock it the moment its client fell behind:
//! its `write()` waits for bytes that only this thread can send. So a write there that must
//! wait drives the runtime itself while it waits: every connection's I/O goes on (answers
//! already made, file routes, other streams, new connections), this stream included, until
//! the client has caught up. Handlers of other requests run once the streaming handler
//! returns; a handler that streams for long should hand its stream to a thread of its own
//! and return (the README's "Streaming" says so), and then nothing waits at all.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{OnceLock, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::python::reply_batch;

thread_local! {
    /// The runtime this thread drives between handler rounds, while it runs handlers.
    static LOOP_RUNTIME: RefCell<Option<Weak<Runtime>>> = const { RefCell::new(None) };
}

/// Runs `round` (the handlers) with `runtime` marked as this thread's to drive (a weak
/// reference: the server's stop can shut the runtime down while a handler still runs).
pub fn as_loop<R>(runtime: &Weak<Runtime>, round: impl FnOnce() -> R) -> R {
    LOOP_RUNTIME.with(|slot| *slot.borrow_mut() = Some(runtime.clone()));
    let result = round();
    LOOP_RUNTIME.with(|slot| *slot.borrow_mut() = None);
    result
}

/// Whether this thread runs handlers between rounds of driving the runtime (the inline
/// mode's loop thread, the default mode's handler threads): a write there that waits must
/// drive the runtime ([`drive`]).
pub fn on_loop() -> bool {
    LOOP_RUNTIME.with(|slot| slot.borrow().is_some())
}

/// On a loop thread, between rounds: drives the runtime until `future` completes and
/// returns its output. Elsewhere (or nested, or the runtime gone): `None`, and the caller
/// waits its own way. Call it detached.
pub fn drive<F: Future>(future: F) -> Option<F::Output> {
    let weak = LOOP_RUNTIME.with(|slot| slot.borrow_mut().take())?;
    let replies = reply_batch::current();
    let output = weak.upgrade().map(|runtime| {
        runtime.block_on(async {
            // The answers this round made so far go out with this round of I/O.
            if let Some(replies) = &replies {
                replies.deliver();
            }
            future.await
        })
    });
    LOOP_RUNTIME.with(|slot| *slot.borrow_mut() = Some(weak));
    output
}

/// How long a loop thread keeps polling for the next request before it lets its CPU sleep
/// (see [`JobWait`]); `GODOTTPD_SPIN_US` microseconds for measurements (0: never).
fn idle_spin() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        std::env::var("GODOTTPD_SPIN_US")
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .map_or(IDLE_SPIN, Duration::from_micros)
    })
}

/// See [`JobWait`]: long enough for a client on the same machine or a nearby one to send
/// its next request (a round trip on loopback, the client's own work included, is some
/// 20 to 60 µs here), short beside the time a thread waits when traffic is sparse.
const IDLE_SPIN: Duration = Duration::from_micros(100);

/// How a loop thread waits for its next jobs while it drives the runtime.
///
/// For the first [`IDLE_SPIN`] of a wait the thread does not sleep: each turn of the loop
/// in [`JobWait::wait`] makes the current-thread scheduler poll the I/O driver without a
/// timeout (a task that yields is pending work, so it calls `epoll_wait` with a zero
/// timeout), so a request that comes soon after the last answer is read as it arrives, not
/// after the CPU wakes from idle, which costs tens of microseconds, more on a virtual
/// machine. This is the bounded busy polling of Linux's `SO_BUSY_POLL` and of Go's spinning
/// scheduler threads, and it is adaptive: the thread spins only when its previous wait
/// ended within the spin (requests are coming that close together), so sparse traffic
/// never pays for it and an idle server sleeps.
#[derive(Default)]
pub struct JobWait {
    /// How long the previous wait lasted.
    last: Duration,
}

impl JobWait {
    /// Drives the runtime until a job may be ready (`job_signal`), or `tick` passes.
    pub async fn wait(&mut self, job_signal: &Notify, tick: Duration) {
        let started = std::time::Instant::now();
        let spin = idle_spin();
        let notified = job_signal.notified();
        tokio::pin!(notified);
        let mut ready = false;
        if self.will_spin() {
            let until = started + spin;
            loop {
                ready =
                    std::future::poll_fn(|cx| Poll::Ready(notified.as_mut().poll(cx).is_ready()))
                        .await;
                if ready || std::time::Instant::now() >= until {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if !ready {
            let _ = tokio::time::timeout(tick, notified).await;
        }
        self.last = started.elapsed();
    }

    /// Whether the next wait starts by spinning: its previous one ended within the spin.
    fn will_spin(&self) -> bool {
        let spin = idle_spin();
        !spin.is_zero() && self.last < spin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_job_signalled_during_the_spin_ends_the_wait() {
        let runtime = runtime();
        let signal = std::sync::Arc::new(Notify::new());
        let mut waiting = JobWait::default();
        assert!(waiting.will_spin());
        let notifier = signal.clone();
        runtime.block_on(async {
            // A connection task that submits a job a few scheduler turns later.
            tokio::spawn(async move {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                notifier.notify_one();
            });
            waiting.wait(&signal, Duration::from_secs(30)).await;
        });
        // Ended by the job, not by its 30 s tick.
        assert!(
            waiting.last < Duration::from_secs(10),
            "took {:?}",
            waiting.last
        );
    }

    #[test]
    fn after_a_wait_longer_than_the_spin_the_next_one_parks_at_once() {
        let runtime = runtime();
        let signal = Notify::new();
        let mut waiting = JobWait::default();
        // Nothing comes: the wait ends at its tick, far past the spin.
        runtime.block_on(waiting.wait(&signal, Duration::from_millis(5)));
        assert!(waiting.last >= Duration::from_millis(5));
        assert!(!waiting.will_spin());
        // Without the spin, a job signalled still ends the wait at once.
        signal.notify_one();
        runtime.block_on(waiting.wait(&signal, Duration::from_secs(30)));
        assert!(
            waiting.last < Duration::from_secs(10),
            "took {:?}",
            waiting.last
        );
    }
}
