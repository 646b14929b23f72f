//! The access log: one line per response, on the Python logger `godottpd.access`.
//!
//! Connection tasks never call Python. When `HttpServer(access_log=True)`, each written
//! response becomes an [`AccessRecord`] on a channel; one thread of the server's own waits
//! on it detached, then attaches once per batch and logs every record that is waiting. With
//! the log off, no record is built at all (the engine holds no sender).

use std::net::SocketAddr;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, TryRecvError};
use pyo3::prelude::*;

use crate::app::exchange::Outgoing;
use crate::http::parse::RequestHead;

/// Python's `logging.INFO`.
const INFO: i32 = 20;

/// One answered request.
#[derive(Debug)]
pub struct AccessRecord {
    pub peer: SocketAddr,
    /// The request line as received (`"-"` when no request line could be read).
    pub request_line: Box<str>,
    pub status: u16,
    /// Body bytes sent (none for HEAD or 304).
    pub bytes: u64,
    pub time: SystemTime,
}

pub enum AccessEvent {
    Record(AccessRecord),
    /// Ends the log thread once everything before it is logged (sent by `stop()`).
    Stop,
}

/// The request line of `head` (the parser checked it is printable ASCII).
pub fn request_line(head: &RequestHead) -> Box<str> {
    let end = memchr::memchr(b'\r', &head.bytes)
        .or_else(|| memchr::memchr(b'\n', &head.bytes))
        .unwrap_or(head.bytes.len());
    String::from_utf8_lossy(&head.bytes[..end]).into()
}

/// The status and body length of an encoded response.
pub fn measure(outgoing: &Outgoing) -> (u16, u64) {
    let bytes = &outgoing.bytes;
    let status = bytes
        .get(9..12)
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    let head_len = memchr::memmem::find(bytes, b"\r\n\r\n").map_or(bytes.len(), |end| end + 4);
    let file_len = outgoing.file.as_ref().map_or(0, |file| file.len);
    let shared_len = outgoing.body.len() as u64;
    (
        status,
        (bytes.len() - head_len) as u64 + shared_len + file_len,
    )
}

/// The time in the Common Log Format, `10/Oct/2000:13:55:36 +0000`, rearranged from the
/// IMF-fixdate `Tue, 10 Oct 2000 13:55:36 GMT` that `httpdate` renders.
fn clf_time(time: SystemTime) -> String {
    let imf = httpdate::fmt_http_date(time);
    let parts: Vec<&str> = imf.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, clock, _] => format!("{day}/{month}/{year}:{clock} +0000"),
        _ => imf,
    }
}

fn log_batch(py: Python<'_>, logger: &Bound<'_, PyAny>, batch: Vec<AccessRecord>) {
    let enabled = logger
        .call_method1("isEnabledFor", (INFO,))
        .and_then(|enabled| enabled.is_truthy());
    if !matches!(enabled, Ok(true)) {
        return;
    }
    for record in batch {
        let host = record.peer.ip().to_canonical().to_string();
        let arguments = (
            "%s - - [%s] \"%s\" %d %d",
            host,
            clf_time(record.time),
            &*record.request_line,
            record.status,
            record.bytes,
        );
        if let Err(error) = logger.call_method1("info", arguments) {
            error.print(py);
        }
    }
}

/// The body of the access-log thread.
pub fn log_thread(receiver: Receiver<AccessEvent>) {
    Python::attach(|py| {
        let logger = match py
            .import("logging")
            .and_then(|logging| logging.call_method1("getLogger", ("godottpd.access",)))
        {
            Ok(logger) => logger,
            Err(error) => return error.print(py),
        };
        loop {
            let mut batch = Vec::new();
            let mut stop = match py.detach(|| receiver.recv()) {
                Ok(AccessEvent::Record(record)) => {
                    batch.push(record);
                    false
                }
                Ok(AccessEvent::Stop) | Err(_) => true,
            };
            while !stop {
                match receiver.try_recv() {
                    Ok(AccessEvent::Record(record)) => batch.push(record),
                    Ok(AccessEvent::Stop) | Err(TryRecvError::Disconnected) => stop = true,
                    Err(TryRecvError::Empty) => break,
                }
            }
            log_batch(py, &logger, batch);
            if stop {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn common_log_time() {
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(971_186_136)),
            "10/Oct/2000:13:55:36 +0000"
        );
    }

    #[test]
    fn measures_status_and_body() {
        let outgoing = Outgoing {
            bytes: b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\nNot found".to_vec(),
            ..Outgoing::default()
        };
        assert_eq!(measure(&outgoing), (404, 9));
        let head_only = Outgoing {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            ..Outgoing::default()
        };
        assert_eq!(measure(&head_only), (200, 0));
    }
}
