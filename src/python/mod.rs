//! The Python layer: the classes Python code sees, and the threads that run its handlers.
//!
//! `server` (`HttpServer`), `router` (`HttpRouter` and what a router handles),
//! `file_router` (`HttpFileRouter`), `request` and `response` (the per-request objects),
//! `form` (`request.form()`: a multipart body parsed as it arrives), `stream` (`HttpStream`,
//! `EventStream`: bodies written piece by piece) and `event_hub` (`EventHub`: fan-out),
//! `handler_threads` (where handlers run: the handler mode), `reply_batch` (a loop thread's
//! answers sent together from inside the runtime), `handoff` (the default mode:
//! handlers on the I/O thread, the I/O handed to another thread when one runs long),
//! `event_loop` (coroutine handlers on an asyncio loop), `json`, `logging`, `access_log`,
//! `errors` (the declared exceptions), `tls` (`self_signed_certificate()` and TLS errors)
//! and `type_name`.
//!
//! **Layer rule**: only this folder imports `pyo3`. It may use every other layer; none of
//! them uses it. Python runs only on threads that this layer owns (or the caller's), never
//! on a tokio worker. `tests/layers.rs` checks the rule.

pub(crate) mod access_log;
pub(crate) mod arguments;
pub(crate) mod errors;
pub(crate) mod event_hub;
pub(crate) mod event_loop;
pub(crate) mod file_router;
pub(crate) mod form;
pub(crate) mod handler_threads;
pub(crate) mod handoff;
pub(crate) mod inline_io;
pub(crate) mod json;
pub(crate) mod logging;
pub(crate) mod reply_batch;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod router;
pub(crate) mod server;
pub(crate) mod stream;
pub(crate) mod tls;
pub(crate) mod type_name;
pub(crate) mod waiting;
pub(crate) mod workers;
