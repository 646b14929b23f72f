//! godottpd: an HTTP/1.1 server for Python with a Rust core, keeping GodotTPD's API.
//!
//! Four layers, one folder each, each depending only on those above it in this list
//! (`ARCHITECTURE.md` walks a request through them; `tests/layers.rs` enforces it):
//!
//! - [`http`]: the wire protocol, pure (parse, chunked, encode, status, tokens, date).
//! - `app`: what a request means here (routes, CORS, cookies, files, the routing decision).
//! - `io`: sockets and tokio tasks (listener, the connection, sendfile).
//! - `python`: the PyO3 classes and the threads that run Python handlers.
//!
//! Only what the benches and fuzz targets need is public.

#![deny(clippy::undocumented_unsafe_blocks)]

mod app;
mod http;
mod io;
mod python;

pub use app::{cookie, cors, routes};
pub use http::{chunk_encode, chunked, encode, limits, parse, proxy_protocol, status, token};

#[pyo3::pymodule]
mod _godottpd {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::python::errors::BadRequest;
    #[pymodule_export]
    use crate::python::event_hub::EventHub;
    #[pymodule_export]
    use crate::python::file_router::HttpFileRouter;
    #[pymodule_export]
    use crate::python::request::{Client, Headers, HttpRequest};
    #[pymodule_export]
    use crate::python::response::HttpResponse;
    #[pymodule_export]
    use crate::python::router::HttpRouter;
    #[pymodule_export]
    use crate::python::server::HttpServer;
    #[pymodule_export]
    use crate::python::stream::{EventStream, HttpStream};
    #[pymodule_export]
    use crate::python::tls::{_machine_addresses, self_signed_certificate};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
