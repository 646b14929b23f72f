//! Sending a streamed body: each batch of pieces goes to the socket as soon as the handler
//! has written it, framed as one chunk on HTTP/1.1 (RFC 9112 §7.1) or as it is on HTTP/1.0
//! (close-delimited, §6.3 rule 8).
//!
//! While it streams, the connection keeps reading: an EOF or a reset means the client left,
//! and the writer learns it at once (`ConnectionError` in Python), not at the next failing
//! write, so an idle event stream whose browser tab was closed is dropped within a moment.
//! (A client that half-closes its side while still reading a stream is taken as gone too:
//! no HTTP client streams a request after asking for an event stream.) Bytes of pipelined
//! requests that arrive meanwhile are kept for after the stream, up to one head's worth.
//! An event stream also gets a comment line after `heartbeat` without a piece, written
//! here in Rust, so that idle proxies keep it open without a Python call.

use std::io::IoSlice;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, Instant};

use crate::app::stream::{StreamBody, Taken};
use crate::http::chunk_encode::{ChunkHeader, CHUNK_END, LAST_CHUNK};
use crate::http::encode::BodyFraming;
use crate::http::sse::HEARTBEAT;

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The body is complete; the connection may go on (unless close-delimited).
    Complete,
    /// The client left or stopped reading: the connection must close.
    Failed,
}

/// A timer far enough away to mean "never".
const NEVER: Duration = Duration::from_secs(86_400 * 365);

/// Sends `body` on `socket` until the writer finishes it or the client goes away.
/// `input` receives what the client sends meanwhile, up to `max_input` bytes.
pub async fn send_stream<S>(
    socket: &mut S,
    input: &mut BytesMut,
    max_input: usize,
    body: StreamBody,
    write_timeout: Duration,
) -> StreamEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let queue = body.reader.queue.clone();
    let chunked = body.framing == BodyFraming::Chunked;
    let heartbeat = body.heartbeat.unwrap_or(NEVER);
    let idle = tokio::time::sleep(heartbeat);
    tokio::pin!(idle);
    // Allocated at the first piece: an idle stream holds none.
    let mut pieces: Vec<Bytes> = Vec::new();
    let end = loop {
        tokio::select! {
            biased;
            taken = queue.take(&mut pieces) => match taken {
                Taken::End if queue.is_gone() => break StreamEnd::Failed,
                Taken::End => {
                    if chunked && write_all(socket, &[LAST_CHUNK], write_timeout).await.is_err() {
                        break StreamEnd::Failed;
                    }
                    break StreamEnd::Complete;
                }
                Taken::Pieces(bytes) => {
                    let written = write_pieces(socket, &pieces, bytes, chunked, write_timeout).await;
                    pieces.clear();
                    queue.release(bytes);
                    if written.is_err() {
                        break StreamEnd::Failed;
                    }
                    idle.as_mut().reset(Instant::now() + heartbeat);
                }
            },
            () = &mut idle, if body.heartbeat.is_some() => {
                let beat = heartbeat_piece(chunked);
                if write_all(socket, &[&beat], write_timeout).await.is_err() {
                    break StreamEnd::Failed;
                }
                idle.as_mut().reset(Instant::now() + heartbeat);
            }
            read = read_some(socket, input), if input.len() < max_input => {
                if !read {
                    break StreamEnd::Failed;
                }
            }
        }
    };
    if end == StreamEnd::Failed {
        queue.mark_gone();
    }
    // Dropping the reader marks the stream gone for a writer still holding it (a finished
    // stream ignores that: its writer is done).
    drop(body);
    end
}

/// Reads what the client sends while it streams: usually nothing until it leaves (an EOF),
/// so into a small buffer in the task rather than capacity reserved in `input` for every
/// idle stream.
async fn read_some<S: AsyncRead + Unpin>(socket: &mut S, input: &mut BytesMut) -> bool {
    let mut buffer = [0u8; 512];
    match socket.read(&mut buffer).await {
        Ok(n) if n > 0 => {
            input.extend_from_slice(&buffer[..n]);
            true
        }
        _ => false,
    }
}

fn heartbeat_piece(chunked: bool) -> Vec<u8> {
    let mut beat = Vec::with_capacity(16);
    if chunked {
        beat.extend_from_slice(ChunkHeader::new(HEARTBEAT.len()).as_bytes());
        beat.extend_from_slice(HEARTBEAT);
        beat.extend_from_slice(CHUNK_END);
    } else {
        beat.extend_from_slice(HEARTBEAT);
    }
    beat
}

/// Writes one batch: a chunk of `bytes` bytes made of `pieces`, or the pieces as they are.
async fn write_pieces<S: AsyncWrite + Unpin>(
    socket: &mut S,
    pieces: &[Bytes],
    bytes: usize,
    chunked: bool,
    write_timeout: Duration,
) -> Result<(), ()> {
    let header = ChunkHeader::new(bytes.max(1));
    let mut slices: Vec<&[u8]> = Vec::with_capacity(pieces.len() + 2);
    if chunked {
        slices.push(header.as_bytes());
    }
    slices.extend(pieces.iter().map(|piece| &piece[..]));
    if chunked {
        slices.push(CHUNK_END);
    }
    write_all(socket, &slices, write_timeout).await
}

/// Writes every slice, vectored; a client that takes nothing for `write_timeout` is dropped.
async fn write_all<S: AsyncWrite + Unpin>(
    socket: &mut S,
    slices: &[&[u8]],
    write_timeout: Duration,
) -> Result<(), ()> {
    let mut index = 0;
    let mut offset = 0;
    while index < slices.len() {
        if offset >= slices[index].len() {
            index += 1;
            offset = 0;
            continue;
        }
        let mut io: Vec<IoSlice<'_>> = Vec::with_capacity(slices.len() - index);
        io.push(IoSlice::new(&slices[index][offset..]));
        io.extend(slices[index + 1..].iter().map(|slice| IoSlice::new(slice)));
        let mut written = match timeout(write_timeout, socket.write_vectored(&io)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Err(()),
        };
        while written > 0 && index < slices.len() {
            let left = slices[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::stream::{StreamQueue, StreamReader};

    fn body(queue: &std::sync::Arc<StreamQueue>, framing: BodyFraming) -> StreamBody {
        StreamBody {
            reader: StreamReader {
                queue: queue.clone(),
            },
            framing,
            heartbeat: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn chunks_then_last_chunk_and_pipelined_bytes_kept() {
        let (mut server, mut client) = tokio::io::duplex(64);
        let queue = StreamQueue::new(1024);
        queue.push(Bytes::from_static(b"hello ")).unwrap();
        queue.push(Bytes::from_static(b"world")).unwrap();
        let writer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                queue.push(Bytes::from(vec![b'x'; 100])).unwrap();
                queue.finish();
            })
        };
        client.write_all(b"GET /next").await.unwrap();
        let reading = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        let mut input = BytesMut::new();
        let end = send_stream(
            &mut server,
            &mut input,
            1024,
            body(&queue, BodyFraming::Chunked),
            Duration::from_secs(5),
        )
        .await;
        writer.join().unwrap();
        assert_eq!(end, StreamEnd::Complete);
        drop(server);
        let received = reading.await.unwrap();
        let mut decoded = BytesMut::from(&received[..]);
        let mut out = Vec::new();
        let done = crate::http::chunked::ChunkedDecoder::default()
            .decode(&mut decoded, &mut out, u64::MAX)
            .unwrap();
        assert!(done && decoded.is_empty());
        let mut expected = b"hello world".to_vec();
        expected.extend_from_slice(&[b'x'; 100]);
        assert_eq!(out, expected);
        assert!(input.starts_with(b"GET /next") || input.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn peer_leaving_marks_the_stream_gone() {
        let (mut server, client) = tokio::io::duplex(64);
        let queue = StreamQueue::new(1024);
        drop(client);
        let mut input = BytesMut::new();
        let end = send_stream(
            &mut server,
            &mut input,
            1024,
            body(&queue, BodyFraming::UntilClose),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(end, StreamEnd::Failed);
        assert!(queue.is_gone());
    }
}
