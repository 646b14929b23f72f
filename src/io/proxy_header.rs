//! Reading the PROXY protocol header that starts every connection when the server runs
//! with `proxy_protocol=True` (haproxy's `doc/proxy-protocol.txt`).

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::http::proxy_protocol::{parse, Parsed, ProxyHeader};

/// Reads the header into `input` until it is complete, and removes it; bytes after it (the
/// first request, sent in the same packet) stay in `input`. Returns the client address to
/// use: the header's source, or `peer` for `LOCAL`/`UNKNOWN`. `None` means close at once,
/// without an answer: garbage (§2: "the receiver must not try to guess"), a connection
/// closed mid-header, or a header not complete by `deadline` (the request head's
/// `header_timeout`, which the header counts against). The read is bounded by the format:
/// 107 bytes for version 1, 16 + 65535 for version 2.
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    input: &mut BytesMut,
    peer: SocketAddr,
    deadline: Instant,
) -> Option<SocketAddr> {
    loop {
        match parse(input) {
            Ok(Parsed::Complete { header, length }) => {
                input.advance(length);
                return Some(match header {
                    ProxyHeader::Proxied { source, .. } => source,
                    ProxyHeader::UseSocket => peer,
                });
            }
            Ok(Parsed::Incomplete) => {}
            Err(_) => return None,
        }
        input.reserve(4096);
        match tokio::time::timeout_at(deadline, stream.read_buf(input)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn header_split_over_reads_then_the_request_stays() {
        run(async {
            let (mut client, mut server) = tokio::io::duplex(64);
            let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let writer = tokio::spawn(async move {
                for part in [
                    &b"PROXY TCP4 203.0.113.7 "[..],
                    b"10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n",
                ] {
                    client.write_all(part).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client
            });
            let mut input = BytesMut::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            let source = read_proxy_header(&mut server, &mut input, peer, deadline).await;
            assert_eq!(source, Some("203.0.113.7:5555".parse().unwrap()));
            let _client = writer.await.unwrap();
            assert!(input.starts_with(b"GET / HTTP/1.1\r\n") || input.is_empty());
        });
    }

    #[test]
    fn garbage_eof_and_timeout_close() {
        run(async {
            let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let (mut client, mut server) = tokio::io::duplex(64);
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut input = BytesMut::new();
            assert_eq!(
                read_proxy_header(&mut server, &mut input, peer, deadline).await,
                None
            );
            let (mut client, mut server) = tokio::io::duplex(64);
            client.write_all(b"PROXY TCP4").await.unwrap();
            drop(client);
            let mut input = BytesMut::new();
            assert_eq!(
                read_proxy_header(&mut server, &mut input, peer, deadline).await,
                None
            );
            let (_client, mut server) = tokio::io::duplex(64);
            let soon = Instant::now() + Duration::from_millis(20);
            let mut input = BytesMut::new();
            assert_eq!(
                read_proxy_header(&mut server, &mut input, peer, soon).await,
                None
            );
        });
    }
}
