//! The HTTP/1.1 wire protocol, pure: bytes in, bytes out.
//!
//! Parsing a request head (`parse`), body framing (`chunked`, and `chunk_encode` for
//! streamed responses), the Server-Sent Events format (`sse`), encoding a response head
//! (`encode`), status codes, tokens and field values, the `Date` header, the limits a
//! server enforces and the error a refused request carries.
//!
//! **Layer rule**: this folder imports neither `tokio` nor `pyo3`, nor any other layer of
//! the crate (`app`, `io`, `python`). Everything here is a pure function or a plain data
//! type, so it is unit-tested, benchmarked and fuzzed without a socket or an interpreter.
//! `tests/layers.rs` checks the rule.

pub mod chunk_encode;
pub mod chunked;
pub(crate) mod date;
pub mod encode;
pub(crate) mod error;
pub mod limits;
pub(crate) mod method;
pub mod parse;
pub mod proxy_protocol;
pub(crate) mod sse;
pub mod status;
pub mod token;
