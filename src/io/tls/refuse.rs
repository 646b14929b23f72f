//! The answers an HTTPS port gives without serving a request: plain HTTP sent to it, and a
//! connection the server has no room for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::http::encode::{encode_simple, Persistence, ServerHeaders};
use crate::io::engine::{Application, Engine};
use crate::io::proxy_header::read_proxy_header;
use crate::io::tls::acceptor::{accept, Accepted, TlsAcceptor};
use crate::io::tls::prefixed::Prefixed;

/// How long, and how much, a refused client may still send before the socket is dropped
/// (closing with unread input sends RST, which can destroy the answer before it is read).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;
/// A refused client gets this long to take the answer (and, when busy, to do a handshake).
const REFUSAL_TIME: Duration = Duration::from_secs(1);

fn encode<A: Application>(engine: &Engine<A>, status: u16, extra: &[u8], body: &[u8]) -> Vec<u8> {
    let identifier = engine.config.server_identifier.load();
    let defaults = ServerHeaders {
        server: identifier.as_bytes(),
        extra_lines: extra,
        persistence: Persistence::Close,
    };
    let mut out = Vec::with_capacity(256 + body.len());
    encode_simple(
        &mut out,
        status,
        &defaults,
        &[],
        b"text/plain; charset=utf-8",
        body,
        false,
    );
    out
}

/// Writes `answer`, closes our side, and reads (and drops) what the client still sends for
/// a moment, so that our answer is not lost to an RST.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, answer: &[u8]) {
    if timeout(REFUSAL_TIME, stream.write_all(answer))
        .await
        .is_err()
    {
        return;
    }
    let _ = timeout(REFUSAL_TIME, stream.shutdown()).await;
    let deadline = Instant::now() + LINGER_TIME;
    // On the heap: an array here would sit in every HTTPS connection's task.
    let mut sink = vec![0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        match timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => return,
        }
    }
}

/// The `https://` address the client reached, for the refusal's text.
fn https_url(local: Option<SocketAddr>) -> String {
    match local {
        Some(address) => {
            let address = SocketAddr::new(address.ip().to_canonical(), address.port());
            format!("https://{address}/")
        }
        None => "https://".to_owned(),
    }
}

/// Plain HTTP on the HTTPS port: a cleartext `400` that says so, then close. There is no
/// redirect: the request has not been read, and a client that sends cleartext to this port
/// is best told plainly.
pub async fn refuse_plain_http<A: Application>(
    mut tcp: Prefixed<TcpStream>,
    engine: Arc<Engine<A>>,
) {
    let body = format!(
        "Bad Request: this port speaks HTTPS, not plain HTTP; use {}\n",
        https_url(tcp.inner().local_addr().ok())
    );
    let answer = encode(&engine, 400, b"", body.as_bytes());
    answer_and_close(&mut tcp, &answer).await;
}

/// No room for this connection on an HTTPS port: a short handshake, then `503` through it
/// (a cleartext 503 would reach a TLS client as a protocol error). Plain HTTP gets its 400;
/// a client that does not finish the handshake within a second is dropped.
pub async fn refuse_busy<A: Application>(
    tcp: TcpStream,
    acceptor: Arc<TlsAcceptor>,
    engine: Arc<Engine<A>>,
) {
    let deadline = Instant::now() + REFUSAL_TIME;
    let Some(tcp) = read_ahead(tcp, &engine, deadline).await else {
        return;
    };
    match accept(tcp.1, &acceptor, deadline).await {
        Accepted::Tls(mut stream) => {
            let answer = encode(
                &engine,
                503,
                b"Retry-After: 1\r\n",
                b"Service Unavailable: too many open connections",
            );
            answer_and_close(&mut stream, &answer).await;
        }
        Accepted::PlainHttp(tcp) => refuse_plain_http(tcp, engine).await,
        Accepted::Failed(reason) => engine.debug(|| format!("refused connection: {reason}")),
    }
}

/// With `proxy_protocol=True`, reads the PROXY header that comes before the TLS handshake
/// (a load balancer sends it in cleartext); returns the client it names (or the socket's
/// peer) and the stream with whatever followed the header in front of it. `None`: no valid
/// header by `deadline`, close at once.
pub async fn read_ahead<A: Application>(
    mut tcp: TcpStream,
    engine: &Engine<A>,
    deadline: Instant,
) -> Option<(Option<SocketAddr>, Prefixed<TcpStream>)> {
    let mut prefix = bytes::BytesMut::new();
    if !engine.proxies.proxy_protocol {
        return Some((None, Prefixed::new(prefix, tcp)));
    }
    let peer = tcp.peer_addr().ok()?;
    let client = read_proxy_header(&mut tcp, &mut prefix, peer, deadline).await?;
    Some((Some(client), Prefixed::new(prefix, tcp)))
}
