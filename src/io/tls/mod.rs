//! HTTPS: rustls under the same connection code as plain TCP.
//!
//! `config` turns the PEM files into a rustls configuration (every problem an error naming
//! the file), `acceptor` tells TLS from plain HTTP on a new connection and runs the
//! handshake, `self_signed` makes (and caches) a certificate for local testing.

pub(crate) mod acceptor;
pub(crate) mod config;
pub(crate) mod prefixed;
pub(crate) mod refuse;
pub(crate) mod self_signed;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::app::exchange::Scheme;
use crate::io::connection;
use crate::io::engine::{Application, Engine};
use crate::io::transport::Transport;
use acceptor::{accept, Accepted, TlsAcceptor};

/// A TLS stream has no descriptor `sendfile(2)` could write plaintext to: file bodies are
/// encrypted from the transport's bounded copy buffer (the trait's default).
impl Transport for acceptor::TlsStream {}

/// Serves one connection on an HTTPS port: the handshake, within `header_timeout` of the
/// accept, then the same connection code as plain TCP, whose wait for the first request
/// also counts from the accept. Plain HTTP gets its cleartext 400; a failed handshake
/// closes this connection and nothing else.
pub async fn serve_tls<A: Application>(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Arc<TlsAcceptor>,
    engine: Arc<Engine<A>>,
) {
    let accepted_at = Instant::now();
    let deadline = accepted_at + engine.limits.header_timeout;
    // A handshake still under way when the server stops is dropped at once, as an idle
    // connection is: it has no request in flight to finish. A PROXY header, when the server
    // expects one, comes first and counts against the same deadline.
    let handshake = async {
        let (client, tcp) = refuse::read_ahead(tcp, &engine, deadline).await?;
        Some((client, accept(tcp, &tls, deadline).await))
    };
    let (client, accepted) = tokio::select! {
        accepted = handshake => match accepted {
            Some(accepted) => accepted,
            None => return,
        },
        () = engine.stop.cancelled() => return,
    };
    let peer = client.unwrap_or(peer);
    match accepted {
        Accepted::Tls(stream) => {
            connection::serve_accepted(*stream, peer, Scheme::Https, engine, accepted_at).await
        }
        Accepted::PlainHttp(tcp) => refuse::refuse_plain_http(tcp, engine).await,
        Accepted::Failed(reason) => engine.debug(|| format!("connection from {peer}: {reason}")),
    }
}
