//! What passes between a connection task and a handler for one request: the request's
//! data, the facts its response needs to encode itself, the bytes that come back, and the
//! record the access log keeps of it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::app::forwarded::ProxySettings;
use crate::app::stream::StreamBody;
use crate::app::upload::RequestBody;
use crate::http::encode::Persistence;
use crate::http::method::KnownMethod;
use crate::http::parse::RequestHead;

/// Whether a connection is plain TCP or TLS (`request.scheme`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The server's one "stopping" signal, shared by the accept loops, every connection and
/// every response: once it fires, idle connections close and answers say
/// `Connection: close` (RFC 9112 §9.6: the server says so when it will close).
pub type StopSignal = tokio_util::sync::CancellationToken;

/// One client connection, as the Python objects see it.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// The client's address: the socket's peer, or the source a PROXY header gave.
    pub peer: SocketAddr,
    /// Whom to believe about forwarded requests (`request.client`, `scheme`, `host`).
    pub proxies: Arc<ProxySettings>,
    pub scheme: Scheme,
    open: AtomicBool,
    /// Fires when the connection has closed (`await client.wait_closed()`).
    closed: tokio_util::sync::CancellationToken,
    /// The server's stop signal: a response finished once it fired closes the connection.
    server_stopping: StopSignal,
    /// The server's `stream_buffer`: how many bytes a streamed response may queue.
    pub stream_buffer: usize,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, scheme: Scheme, server_stopping: StopSignal) -> Self {
        ConnectionInfo {
            peer,
            proxies: Arc::default(),
            scheme,
            open: AtomicBool::new(true),
            closed: tokio_util::sync::CancellationToken::new(),
            server_stopping,
            stream_buffer: crate::http::limits::Limits::default().stream_buffer,
        }
    }

    /// The same connection, judged by `proxies` (set once, before the first request).
    pub fn behind(mut self, proxies: Arc<ProxySettings>) -> Self {
        self.proxies = proxies;
        self
    }

    /// Sets the server's `stream_buffer` for the streamed responses on this connection.
    pub fn with_stream_buffer(mut self, stream_buffer: usize) -> Self {
        self.stream_buffer = stream_buffer;
        self
    }

    /// Whether the server is stopping, so that this connection ends after its response.
    pub fn server_stopping(&self) -> bool {
        self.server_stopping.is_cancelled()
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn mark_closed(&self) {
        self.open.store(false, Ordering::Release);
        self.closed.cancel();
    }

    /// Completes once the connection has closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }
}

/// A whole request: head, body and what routing found.
#[derive(Debug)]
pub struct RequestData {
    pub head: RequestHead,
    /// Read whole before the handler runs, or streamed to it (`stream_body = True`).
    pub body: RequestBody,
    /// The percent-decoded path.
    pub path: String,
    pub parameters: Vec<(String, String)>,
}

/// The encoded response for one request, handed back to its connection.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The status code, as encoded in `bytes` (kept for the access log).
    pub status: u16,
    /// Head and (unless HEAD, or in `body`) body, ready for the socket.
    pub bytes: Vec<u8>,
    /// A large body shared with its Python `bytes` object rather than copied: written right
    /// after `bytes`. Empty otherwise.
    pub body: Bytes,
    /// The connection closes after these bytes.
    pub close: bool,
    /// A body streamed from a file after `bytes` (which then hold only the head).
    pub file: Option<FileBody>,
    /// A body streamed as a handler writes it, after `bytes` (which then hold only the head).
    pub stream: Option<StreamBody>,
}

/// `len` bytes of `file` from `offset`, sent with `sendfile(2)` without passing through
/// user memory, so a file of any size costs the same.
#[derive(Debug)]
pub struct FileBody {
    pub file: std::fs::File,
    pub offset: u64,
    pub len: u64,
}

impl Outgoing {
    /// An answer of `status` whose head (and body, unless `body` holds it) is `bytes`; the
    /// connection closes after it when `persistence` says so.
    pub fn new(status: u16, bytes: Vec<u8>, body: Bytes, persistence: Persistence) -> Self {
        Outgoing {
            status,
            bytes,
            body,
            close: persistence == Persistence::Close,
            file: None,
            stream: None,
        }
    }

    /// Body bytes it sends (none for HEAD or 304), for the access log.
    pub fn body_len(&self) -> u64 {
        let head_len =
            memchr::memmem::find(&self.bytes, b"\r\n\r\n").map_or(self.bytes.len(), |end| end + 4);
        let file_len = self.file.as_ref().map_or(0, |file| file.len);
        (self.bytes.len() - head_len) as u64 + self.body.len() as u64 + file_len
    }
}

pub type ReplySender = tokio::sync::oneshot::Sender<Outgoing>;
pub type ReplyReceiver = tokio::sync::oneshot::Receiver<Outgoing>;

/// What a response needs to know about the request it answers.
#[derive(Debug)]
pub struct ReplyContext {
    pub request: Arc<RequestData>,
    pub connection: Arc<ConnectionInfo>,
    /// HEAD: the body is measured but not sent.
    pub head_only: bool,
    pub persistence: Persistence,
    /// Pre-rendered CORS header lines for this request's origin, if any.
    pub cors_lines: Option<Arc<[u8]>>,
    /// The `Allow` value of the route, for a default handler's 405.
    pub allow: Arc<str>,
    /// The server identifier at the time the request arrived.
    pub server_identifier: Arc<Box<str>>,
}

impl ReplyContext {
    /// The context with its request's body, which the connection reads after routing
    /// (the request is not shared before its job is submitted, so this moves nothing).
    pub fn with_body(mut self, body: RequestBody) -> Self {
        if let Some(request) = Arc::get_mut(&mut self.request) {
            request.body = body;
        } else {
            let request = &self.request;
            self.request = Arc::new(RequestData {
                head: request.head.clone(),
                body,
                path: request.path.clone(),
                parameters: request.parameters.clone(),
            });
        }
        self
    }
}

/// One request for a handler of the application's route type `R`: the I/O layer builds it,
/// the application runs it and answers through `reply`.
pub struct Job<R> {
    pub route: Arc<R>,
    pub method: KnownMethod,
    pub context: ReplyContext,
    pub reply: ReplySender,
}

/// One answered request, as the access log records it.
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

/// What the connections tell the server's log thread (which alone calls Python's logging).
pub enum AccessEvent {
    Record(AccessRecord),
    /// A line for the `godottpd` logger at DEBUG: something that ended one connection
    /// quietly (a failed TLS handshake), worth knowing when debugging, never an error.
    Debug(String),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_length_excludes_the_head() {
        let outgoing = Outgoing {
            status: 404,
            bytes: b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\nNot found".to_vec(),
            ..Outgoing::default()
        };
        assert_eq!(outgoing.body_len(), 9);
        let head_only = Outgoing {
            status: 200,
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            body: Bytes::from_static(b"shared"),
            ..Outgoing::default()
        };
        assert_eq!(head_only.body_len(), 6);
    }
}
