//! The configuration a running server reads on every request, and may change while it runs.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::app::cors::Cors;
use crate::app::files::FileRoute;
use crate::app::routes::RouteTable;
use crate::http::method::KnownMethod;

/// A route that leads to an application handler. The Python layer implements it for its
/// routers; this layer only asks what the route handles.
pub trait HandlerRoute: Send + Sync + 'static {
    /// Whether the route has a handler of its own for `method`.
    fn handles(&self, method: KnownMethod) -> bool;
    /// The route's `Allow` value, for its 405 answers.
    fn allow(&self) -> &Arc<str>;
    /// How the route takes request bodies: whole (the default) or streamed, and its limit.
    fn body_policy(&self) -> BodyPolicy {
        BodyPolicy::default()
    }
}

/// How a route takes request bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyPolicy {
    /// `stream_body = True`: the handler runs once the head has arrived and reads the body
    /// as it arrives.
    pub streamed: bool,
    /// The route's own `max_body_size`: `None` keeps the server's, `Some(None)` is no limit.
    pub max_body_size: Option<Option<u64>>,
}

impl BodyPolicy {
    /// The largest body the route takes, given the server's limit.
    pub fn limit(&self, server_limit: u64) -> u64 {
        match self.max_body_size {
            None => server_limit,
            Some(limit) => limit.unwrap_or(u64::MAX),
        }
    }
}

/// Where a route leads.
pub enum Target<R> {
    /// A handler of the application.
    Handler(Arc<R>),
    /// An `HttpFileRouter`: answered in Rust, with no handler call.
    Files(Arc<FileRoute>),
}

impl<R> Clone for Target<R> {
    fn clone(&self) -> Self {
        match self {
            Target::Handler(route) => Target::Handler(route.clone()),
            Target::Files(files) => Target::Files(files.clone()),
        }
    }
}

/// Configuration that `register_router`, `enable_cors` and `server_identifier` may change
/// while the server runs; connections read it through lock-free swaps.
pub struct LiveConfig<R> {
    pub routes: ArcSwap<RouteTable<Target<R>>>,
    pub cors: ArcSwapOption<Cors>,
    pub server_identifier: ArcSwap<Box<str>>,
}

impl<R> LiveConfig<R> {
    pub fn new(server_identifier: &str) -> Self {
        LiveConfig {
            routes: ArcSwap::from_pointee(RouteTable::default()),
            cors: ArcSwapOption::empty(),
            server_identifier: ArcSwap::from_pointee(server_identifier.into()),
        }
    }
}
