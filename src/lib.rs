//! godottpd: an HTTP/1.1 server for Python with a Rust core, keeping GodotTPD's API.
//!
//! One concern per module: `parse` (request heads), `chunked` (body framing), `encode`
//! (response heads), `conn` (one connection), `files` (serving folders), `sendfile`
//! (streaming file bodies), `access_log` (request logging), `listener` (sockets), `dispatch` (running
//! Python handlers), `router` (route patterns), and the Python classes in `server`,
//! `http_router`, `request` and `response`.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod access_log;
pub mod chunked;
pub mod conn;
pub mod cookie;
pub mod cors;
pub mod date;
pub mod dispatch;
pub mod encode;
pub mod engine;
pub mod error;
pub mod exchange;
pub mod files;
pub mod http_router;
pub mod json;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod parse;
pub mod request;
pub mod response;
pub mod router;
pub mod sendfile;
pub mod server;
pub mod status;
pub mod token;
pub mod type_name;

#[pyo3::pymodule]
mod _godottpd {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::files::HttpFileRouter;
    #[pymodule_export]
    use crate::http_router::HttpRouter;
    #[pymodule_export]
    use crate::request::{Client, Headers, HttpRequest};
    #[pymodule_export]
    use crate::response::HttpResponse;
    #[pymodule_export]
    use crate::server::HttpServer;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
