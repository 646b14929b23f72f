//! What every connection task shares: limits, routes, CORS, the job channel, shutdown.

use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::app::cors::Cors;
use crate::app::files::FileRoute;
use crate::app::forwarded::ProxySettings;
use crate::app::routes::RouteTable;
use crate::http::limits::Limits;
use crate::python::access_log::AccessEvent;
use crate::python::handler_threads::Work;
use crate::python::router::PyRoute;

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
    /// Cancelled when the server starts stopping: accept loops end, idle connections close.
    pub shutdown: CancellationToken,
    /// Where finished responses are recorded, when `access_log=True`.
    pub access_log: Option<Sender<AccessEvent>>,
    open_connections: AtomicUsize,
    /// Set by `stop()` before anything else: responses finished from then on close their
    /// connection (RFC 9112 §9.6: the server says `Connection: close` when it will close).
    pub stopping: Arc<AtomicBool>,
    /// In inline mode, wakes the loop thread out of its I/O round to run the handlers.
    pub job_signal: Option<Arc<Notify>>,
    /// Behind a proxy (`trusted_proxies`, `proxy_protocol`): see `app::forwarded`.
    pub proxies: Arc<ProxySettings>,
}

impl Engine {
    pub fn new(
        limits: Limits,
        config: Arc<LiveConfig>,
        work: Sender<Work>,
        shutdown: CancellationToken,
        access_log: Option<Sender<AccessEvent>>,
    ) -> Self {
        Engine {
            limits,
            config,
            work,
            shutdown,
            access_log,
            open_connections: AtomicUsize::new(0),
            job_signal: None,
            stopping: Arc::new(AtomicBool::new(false)),
            proxies: Arc::default(),
        }
    }

    /// Hands a job to the Python side; `false` when nobody takes jobs any more.
    pub fn submit(&self, job: Work) -> bool {
        if self.work.send(job).is_err() {
            return false;
        }
        if let Some(signal) = &self.job_signal {
            signal.notify_one();
        }
        true
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
        self.stopping.load(Ordering::Acquire)
    }
}

/// One admitted connection; dropping it (even when the task is cancelled) frees the slot.
pub struct ConnectionSlot {
    engine: Arc<Engine>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.engine.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}
