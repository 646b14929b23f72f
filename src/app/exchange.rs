//! What passes between a connection task and the Python side for one request: the request's
//! data, the facts its response needs to encode itself, and the bytes that come back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::app::stream::StreamBody;
use crate::http::encode::Persistence;
use crate::http::parse::RequestHead;

/// One client connection, as the Python objects see it.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    open: AtomicBool,
    /// The server's "stopping" flag: a response finished while it is set closes the connection.
    server_stopping: Arc<AtomicBool>,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, server_stopping: Arc<AtomicBool>) -> Self {
        ConnectionInfo {
            peer,
            open: AtomicBool::new(true),
            server_stopping,
        }
    }

    /// Whether the server is stopping, so that this connection ends after its response.
    pub fn server_stopping(&self) -> bool {
        self.server_stopping.load(Ordering::Acquire)
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn mark_closed(&self) {
        self.open.store(false, Ordering::Release);
    }
}

/// A whole request: head, body and what routing found.
#[derive(Debug)]
pub struct RequestData {
    pub head: RequestHead,
    pub body: Bytes,
    /// The percent-decoded path.
    pub path: String,
    pub parameters: Vec<(String, String)>,
}

/// The encoded response for one request, handed back to its connection.
#[derive(Debug, Default)]
pub struct Outgoing {
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
    /// The server's `stream_buffer`: how many bytes a streamed response may queue.
    pub stream_buffer: usize,
}
