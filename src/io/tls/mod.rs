//! HTTPS: rustls under the same connection code as plain TCP.
//!
//! `config` turns the PEM files into a rustls configuration (every problem an error naming
//! the file), `acceptor` tells TLS from plain HTTP on a new connection and runs the
//! handshake, `self_signed` makes (and caches) a certificate for local testing.

pub(crate) mod acceptor;
pub(crate) mod config;
pub(crate) mod refuse;
pub(crate) mod self_signed;
