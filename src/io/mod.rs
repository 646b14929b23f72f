//! The I/O layer: sockets, the tokio runtime's tasks, timers, and every socket write.
//!
//! The listener accepts (`listener`), one task serves each connection (`connection`),
//! the stream it runs on is a `transport` (plain TCP, whose file bodies go out with
//! `sendfile(2)` (`sendfile`), or any other `AsyncRead + AsyncWrite`: TLS, in `tls`, whose
//! handshake runs in the connection's task before it), streamed bodies go out as they are
//! written (`stream_writer`), and what all connections share is in
//! `engine`.
//!
//! **Layer rule**: this folder imports `http` and `app`, never `pyo3` or `python`: no tokio
//! task ever touches the interpreter. Python handlers are reached only through the
//! [`engine::Application`] trait, which the Python layer implements with a channel to its
//! handler threads. `tests/layers.rs` checks the rule.

pub(crate) mod connection;
pub(crate) mod engine;
pub(crate) mod listener;
pub(crate) mod proxy_header;
pub(crate) mod sendfile;
pub(crate) mod stream_writer;
pub(crate) mod tls;
pub(crate) mod transport;
