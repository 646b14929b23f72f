//! The byte stream a connection runs on: plain TCP today, TLS or scripted I/O in tests.
//!
//! The connection is generic over it, so the protocol loop never names a socket type.
//! What differs between streams is how a file body goes out: a TCP socket takes it with
//! `sendfile(2)` straight from the page cache; any other stream (TLS, which must encrypt
//! it, or a test's script) gets it copied through one small buffer, so memory stays
//! bounded whatever the file's size.

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::app::exchange::FileBody;
use crate::io::sendfile::{send_file, send_head};

/// Size of the buffer a file body is copied through on a stream without `sendfile`.
pub const FILE_COPY_BUFFER: usize = 64 * 1024;

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether written bytes may wait in the stream until `flush` (TLS records do; a TCP
    /// socket sends on `write`, so the connection skips the call and its timer).
    const BUFFERS_WRITES: bool = true;

    /// Writes `head`, then `len` bytes of `body`'s file from its offset. A client that reads
    /// nothing for `write_timeout` fails it, and so does a file that shrank below the
    /// announced length (`UnexpectedEof`: the promised `Content-Length` cannot be kept).
    fn send_file_answer<'a>(
        &'a mut self,
        head: &'a [u8],
        body: &'a FileBody,
        write_timeout: Duration,
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        copy_file_answer(self, head, body, write_timeout)
    }
}

impl Transport for TcpStream {
    const BUFFERS_WRITES: bool = false;

    async fn send_file_answer<'a>(
        &'a mut self,
        head: &'a [u8],
        body: &'a FileBody,
        write_timeout: Duration,
    ) -> io::Result<()> {
        send_head(self, head, write_timeout).await?;
        send_file(self, body, write_timeout).await
    }
}

/// Writes `bytes` whole; `TimedOut` when the peer takes nothing for `write_timeout`.
pub async fn write_all_within<W: AsyncWrite + Unpin + ?Sized>(
    stream: &mut W,
    bytes: &[u8],
    write_timeout: Duration,
) -> io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        match timeout(write_timeout, stream.write(&bytes[written..])).await {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => written += n,
            Ok(Err(error)) => return Err(error),
        }
    }
    Ok(())
}

/// The portable file answer: the head, then the file through one buffer of
/// [`FILE_COPY_BUFFER`] bytes (reads of a local file's page cache, as the file router's
/// other file-system calls, run on the I/O thread).
pub async fn copy_file_answer<W: AsyncWrite + Unpin + Send + ?Sized>(
    stream: &mut W,
    head: &[u8],
    body: &FileBody,
    write_timeout: Duration,
) -> io::Result<()> {
    write_all_within(stream, head, write_timeout).await?;
    let mut file = body.file.try_clone()?;
    file.seek(SeekFrom::Start(body.offset))?;
    let mut remaining = body.len;
    let mut buffer = vec![0u8; FILE_COPY_BUFFER.min(remaining as usize).max(1)];
    while remaining > 0 {
        let want = remaining.min(buffer.len() as u64) as usize;
        let read = file.read(&mut buffer[..want])?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        write_all_within(stream, &buffer[..read], write_timeout).await?;
        remaining -= read as u64;
    }
    stream.flush().await
}
