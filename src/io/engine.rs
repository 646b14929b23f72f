//! What every connection task shares: limits, live configuration, the application that
//! runs handlers, the stop signal, the access log, and the count of open connections.

use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::app::config::{HandlerRoute, LiveConfig};
use crate::app::exchange::{AccessEvent, Job, StopSignal};
use crate::app::forwarded::ProxySettings;
use crate::http::limits::Limits;

/// The application behind the connections: it takes the requests that need a handler.
///
/// This is the seam between the I/O layer and the Python layer (which implements it with a
/// channel to its handler threads): a connection task never learns what a handler is, and
/// never runs one. Tests implement it in plain Rust.
pub trait Application: Send + Sync + 'static {
    type Route: HandlerRoute;

    /// Hands a job over; `false` when nobody takes jobs any more (the server is stopping).
    /// Must not block: it runs on a tokio worker.
    fn submit(&self, job: Job<Self::Route>) -> bool;
}

pub struct Engine<A: Application> {
    pub limits: Limits,
    pub config: Arc<LiveConfig<A::Route>>,
    pub app: A,
    /// Fires when the server starts stopping: accept loops end, idle connections close,
    /// answers say `Connection: close`.
    pub stop: StopSignal,
    /// Where finished responses are recorded, when `access_log=True`.
    pub access_log: Option<Sender<AccessEvent>>,
    /// Where DEBUG lines go, when the `godottpd` logger was enabled for DEBUG at start.
    pub debug_log: Option<Sender<AccessEvent>>,
    open_connections: AtomicUsize,
    /// Behind a proxy (`trusted_proxies`, `proxy_protocol`): see `app::forwarded`.
    pub proxies: Arc<ProxySettings>,
}

impl<A: Application> Engine<A> {
    pub fn new(
        limits: Limits,
        config: Arc<LiveConfig<A::Route>>,
        app: A,
        stop: StopSignal,
        access_log: Option<Sender<AccessEvent>>,
    ) -> Self {
        Engine {
            limits,
            config,
            app,
            stop,
            access_log,
            debug_log: None,
            open_connections: AtomicUsize::new(0),
            proxies: Arc::default(),
        }
    }

    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Acquire)
    }

    /// Counts a new connection in; `None` when the server is full.
    pub fn admit(self: &Arc<Self>) -> Option<ConnectionSlot<A>> {
        let previous = self.open_connections.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limits.max_connections {
            self.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot {
            engine: self.clone(),
        })
    }

    /// Logs `line` at DEBUG (built only when someone listens).
    pub fn debug(&self, line: impl FnOnce() -> String) {
        if let Some(sender) = &self.debug_log {
            let _ = sender.send(AccessEvent::Debug(line()));
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// One admitted connection; dropping it (even when the task is cancelled) frees the slot.
pub struct ConnectionSlot<A: Application> {
    engine: Arc<Engine<A>>,
}

impl<A: Application> Drop for ConnectionSlot<A> {
    fn drop(&mut self) {
        self.engine.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}
