//! The application layer: what a request means to this server.
//!
//! Route patterns and the route table (`routes`), CORS (`cors`), `Set-Cookie` (`cookie`),
//! the file router's resolution and answers (`files`), the routing decision for one request
//! head (`decide`), the data that crosses between a connection and a handler
//! (`exchange`), a streamed body on its way from a handler to the socket (`stream`), and a
//! streamed request body on its way from the socket to a handler (`upload`), parsed as a
//! form when it is `multipart/form-data` (`multipart`).
//!
//! **Layer rule**: this folder imports `http` only; never `io` (no sockets, no tasks) nor
//! `pyo3`/`python`. Handlers are opaque here: the route table is generic over the handler
//! type the Python layer plugs in. `tests/layers.rs` checks the rule.

pub(crate) mod answer;
pub(crate) mod config;
pub mod cookie;
pub mod cors;
pub(crate) mod decide;
pub(crate) mod exchange;
pub(crate) mod files;
pub(crate) mod forwarded;
pub(crate) mod multipart;
pub mod routes;
pub(crate) mod stream;
pub(crate) mod upload;
