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
use std::sync::Weak;

use tokio::runtime::Runtime;

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
    let output = weak.upgrade().map(|runtime| runtime.block_on(future));
    LOOP_RUNTIME.with(|slot| *slot.borrow_mut() = Some(weak));
    output
}
