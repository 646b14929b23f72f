//! Streaming a file body to a TCP socket (see `transport.rs` for other streams).
//!
//! On Linux the bytes go from the page cache to the socket with `sendfile(2)`, never
//! through user memory: a multi-gigabyte file costs what a small one does. The socket is
//! non-blocking (tokio's), so each call sends what fits in the socket buffer and the task
//! waits for writability in between, like any other write. Elsewhere a small buffer is
//! read and written in turn.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::app::exchange::FileBody;

/// Sends the head of a file answer with `MSG_MORE`: the kernel holds it back to go out in
/// the same packets as the start of the file that `send_file` sends next, as nginx does with
/// `TCP_CORK`, instead of a small packet of its own (one wake-up less for the client).
#[cfg(target_os = "linux")]
pub async fn send_head(
    stream: &mut TcpStream,
    head: &[u8],
    write_timeout: Duration,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let socket = stream.as_raw_fd();
    let mut written = 0;
    while written < head.len() {
        match timeout(write_timeout, stream.writable()).await {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(result) => result?,
        }
        let rest = &head[written..];
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: `socket` belongs to `stream`, borrowed for this call; `rest` is a live,
            // initialised slice whose pointer and length are passed unchanged.
            let sent = unsafe {
                libc::send(
                    socket,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if sent < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(sent as usize)
            }
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(sent) => written += sent,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Elsewhere the head is written as it is.
#[cfg(not(target_os = "linux"))]
pub async fn send_head(
    stream: &mut TcpStream,
    head: &[u8],
    write_timeout: Duration,
) -> io::Result<()> {
    crate::io::transport::write_all_within(stream, head, write_timeout).await
}

/// Largest count handed to one `sendfile` call (Linux sends at most 0x7ffff000 anyway).
#[cfg(target_os = "linux")]
const MAX_CHUNK: u64 = 1 << 30;

/// Sends all of `body`, or fails: a client that reads nothing for `write_timeout` is
/// dropped, and a file that shrank below the announced length ends the connection
/// (`UnexpectedEof`), since the promised `Content-Length` can no longer be kept.
#[cfg(target_os = "linux")]
pub async fn send_file(
    stream: &mut TcpStream,
    body: &FileBody,
    write_timeout: Duration,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let socket = stream.as_raw_fd();
    let file = body.file.as_raw_fd();
    let mut offset = body.offset;
    let mut remaining = body.len;
    while remaining > 0 {
        match timeout(write_timeout, stream.writable()).await {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(result) => result?,
        }
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let mut position = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let count = remaining.min(MAX_CHUNK) as usize;
            // SAFETY: both descriptors are open for the whole call: `socket` belongs to
            // `stream` and `file` to `body.file`, both borrowed for this function's duration;
            // `position` is a valid, exclusively borrowed off_t that sendfile updates.
            let sent = unsafe { libc::sendfile(socket, file, &mut position, count) };
            if sent < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(sent as u64)
            }
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(sent) => {
                offset += sent;
                remaining -= sent;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The portable fallback: through a buffer.
#[cfg(not(target_os = "linux"))]
pub async fn send_file(
    stream: &mut TcpStream,
    body: &FileBody,
    write_timeout: Duration,
) -> io::Result<()> {
    crate::io::transport::copy_file_answer(stream, b"", body, write_timeout).await
}
