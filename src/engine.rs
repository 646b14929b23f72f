//! What every connection task shares: limits, routes, CORS, the job channel, shutdown.

use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{watch, Notify};

use crate::access_log::AccessEvent;
use crate::cors::Cors;
use crate::dispatch::Work;
use crate::files::FileRoute;
use crate::http_router::PyRoute;
use crate::limits::Limits;
use crate::router::RouteTable;

/// Where a route leads.
#[derive(Clone)]
pub enum Target {
    Python(Arc<PyRoute>),
    /// An `HttpFileRouter`: answered in Rust, no Python call.
    Files(Arc<FileRoute>),
}

pub type Routes = ArcSwap<RouteTable<Target>>;

/// Configuration that `register_router`, `enable_cors` and `server_identifier` may change
/// while the server runs; connections read it through lock-free swaps.
pub struct LiveConfig {
    pub routes: Routes,
    pub cors: ArcSwapOption<Cors>,
    pub server_identifier: ArcSwap<Box<str>>,
}

impl LiveConfig {
    pub fn new(server_identifier: &str) -> Self {
        LiveConfig {
            routes: ArcSwap::from_pointee(RouteTable::default()),
            cors: ArcSwapOption::empty(),
            server_identifier: ArcSwap::from_pointee(server_identifier.into()),
        }
    }
}

pub struct Engine {
    pub limits: Limits,
    pub config: Arc<LiveConfig>,
    /// Where jobs for Python handlers go.
    pub work: Sender<Work>,
    pub shutdown: watch::Receiver<bool>,
    /// Where finished responses are recorded, when `access_log=True`.
    pub access_log: Option<Sender<AccessEvent>>,
    open_connections: AtomicUsize,
    /// Signalled each time a connection ends, so `stop()` can wait for the last one.
    pub connection_closed: Notify,
}

impl Engine {
    pub fn new(
        limits: Limits,
        config: Arc<LiveConfig>,
        work: Sender<Work>,
        shutdown: watch::Receiver<bool>,
        access_log: Option<Sender<AccessEvent>>,
    ) -> Self {
        Engine {
            limits,
            config,
            work,
            shutdown,
            access_log,
            open_connections: AtomicUsize::new(0),
            connection_closed: Notify::new(),
        }
    }

    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Acquire)
    }

    /// Counts a new connection in; `None` when the server is full.
    pub fn admit(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let previous = self.open_connections.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limits.max_connections {
            self.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot {
            engine: self.clone(),
        })
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// One admitted connection; dropping it (even when the task is cancelled) frees the slot.
pub struct ConnectionSlot {
    engine: Arc<Engine>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.engine.open_connections.fetch_sub(1, Ordering::AcqRel);
        self.engine.connection_closed.notify_waiters();
    }
}
