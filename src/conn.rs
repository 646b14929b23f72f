//! One client connection: read, parse, route, answer in order, repeat.
//!
//! Requests are taken off the input buffer one at a time; each becomes a pending answer,
//! either ready at once (404, 405, errors, preflights) or waiting for a Python handler.
//! Pipelined requests already in the buffer are all dispatched before any answer is awaited,
//! and their answers go out in request order, coalesced into one write (RFC 9112 §9.3.2).
//! Before the connection waits on the socket, everything pending is flushed.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::chunked::ChunkedDecoder;
use crate::dispatch::{Job, Work};
use crate::encode::{encode_simple, Persistence, ServerHeaders};
use crate::engine::{Engine, Target};
use crate::error::RequestError;
use crate::exchange::{ConnectionInfo, Outgoing, ReplyContext, ReplyReceiver, RequestData};
use crate::http_router::Handler;
use crate::parse::{parse_head, Framing, Method, RequestHead};
use crate::router::RequestPath;

/// Most requests answered in one batch before the connection writes.
const MAX_PIPELINED: usize = 32;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

enum Pending {
    Ready(Outgoing),
    Waiting(ReplyReceiver),
}

/// Why the connection stops.
enum Stop {
    /// Nothing more to do: peer closed, idle timeout, shutdown, write failure.
    Quietly,
    /// The client must be told why, then the connection closes.
    Refuse(RequestError),
}

struct Connection {
    stream: TcpStream,
    input: BytesMut,
    output: Vec<u8>,
    pending: VecDeque<Pending>,
    engine: Arc<Engine>,
    info: Arc<ConnectionInfo>,
    /// Whether any request has been received yet (a fresh connection waits `header_timeout`
    /// for its first byte, a kept-alive one `keepalive_timeout`).
    served_any: bool,
    /// When the head being received must be complete.
    head_deadline: Option<Instant>,
}

/// Serves one connection until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, engine: Arc<Engine>) {
    let _ = stream.set_nodelay(true);
    let info = Arc::new(ConnectionInfo::new(peer));
    let mut connection = Connection {
        stream,
        input: BytesMut::with_capacity(READ_CHUNK),
        output: Vec::with_capacity(READ_CHUNK),
        pending: VecDeque::new(),
        engine,
        info: info.clone(),
        served_any: false,
        head_deadline: None,
    };
    if let Stop::Refuse(error) = connection.run().await {
        connection.refuse(error);
        let _ = connection.flush().await;
    }
    let _ = connection.stream.shutdown().await;
    info.mark_closed();
}

/// Answers a connection the server has no room for: 503, then close.
pub async fn reject_busy(mut stream: TcpStream, engine: Arc<Engine>) {
    let identifier = engine.config.server_identifier.load();
    let defaults =
        ServerHeaders { server: identifier.as_bytes(), extra_lines: b"Retry-After: 1\r\n", persistence: Persistence::Close };
    let mut out = Vec::with_capacity(256);
    let body = b"Service Unavailable: too many open connections";
    encode_simple(&mut out, 503, &defaults, &[], b"text/plain; charset=utf-8", body, false);
    let _ = timeout(Duration::from_secs(1), stream.write_all(&out)).await;
    let _ = stream.shutdown().await;
}

impl Connection {
    async fn run(&mut self) -> Stop {
        loop {
            let head = match parse_head(&mut self.input, &self.engine.limits) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    if !self.flush().await {
                        return Stop::Quietly;
                    }
                    if let Err(stop) = self.read_head().await {
                        return stop;
                    }
                    continue;
                }
                Err(error) => return Stop::Refuse(error),
            };
            self.served_any = true;
            self.head_deadline = None;
            let body = match self.read_body(&head).await {
                Ok(body) => body,
                Err(stop) => return stop,
            };
            let close = self.dispatch(head, body);
            if close || self.pending.len() >= MAX_PIPELINED {
                let open = self.flush().await;
                if close || !open {
                    return Stop::Quietly;
                }
            }
        }
    }

    /// Reads more of a request head (or waits for the next request on an idle connection).
    async fn read_head(&mut self) -> Result<(), Stop> {
        let limits = &self.engine.limits;
        if self.input.is_empty() && self.head_deadline.is_none() {
            // Idle between requests: wait for the first byte, or shutdown, or the idle timeout.
            let idle = if self.served_any { limits.keepalive_timeout } else { limits.header_timeout };
            let mut shutdown = self.engine.shutdown.clone();
            if *shutdown.borrow() {
                return Err(Stop::Quietly);
            }
            self.input.reserve(READ_CHUNK);
            let read = tokio::select! {
                read = timeout(idle, self.stream.read_buf(&mut self.input)) => read,
                _ = shutdown.changed() => return Err(Stop::Quietly),
            };
            return match read {
                Ok(Ok(n)) if n > 0 => {
                    self.head_deadline = Some(Instant::now() + limits.header_timeout);
                    Ok(())
                }
                _ => Err(Stop::Quietly),
            };
        }
        // Part of a head is here: the rest must come before the deadline set at its first
        // byte, however slowly it trickles in (a slowloris client gets 408, not a slot).
        let deadline = *self.head_deadline.get_or_insert_with(|| Instant::now() + limits.header_timeout);
        self.input.reserve(READ_CHUNK);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.input)).await {
            Err(_) => Err(Stop::Refuse(RequestError::new(408, "request header section not received in time"))),
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Quietly),
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn read_more_body(&mut self) -> Result<(), Stop> {
        self.input.reserve(READ_CHUNK);
        match timeout(self.engine.limits.body_timeout, self.stream.read_buf(&mut self.input)).await {
            Err(_) => Err(Stop::Refuse(RequestError::new(408, "request body stalled"))),
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Quietly),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Before waiting for a body that is not buffered yet: answer what is pending, and say
    /// `100 Continue` if the client waits for it (RFC 9110 §10.1.1).
    async fn prepare_body_wait(&mut self, head: &RequestHead, continued: &mut bool) -> Result<(), Stop> {
        if !self.flush().await {
            return Err(Stop::Quietly);
        }
        if head.expect_continue && !*continued {
            *continued = true;
            if self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                return Err(Stop::Quietly);
            }
        }
        Ok(())
    }

    async fn read_body(&mut self, head: &RequestHead) -> Result<Bytes, Stop> {
        let max_body = self.engine.limits.max_body_size;
        let mut continued = false;
        match head.framing {
            Framing::Empty => Ok(Bytes::new()),
            Framing::Length(length) => {
                if length > max_body {
                    // Refused before reading: the client learns before it sends the body.
                    return Err(Stop::Refuse(RequestError::new(413, "request body too large")));
                }
                let length = length as usize;
                if self.input.len() < length {
                    self.prepare_body_wait(head, &mut continued).await?;
                    self.input.reserve(length - self.input.len());
                    while self.input.len() < length {
                        self.read_more_body().await?;
                    }
                }
                Ok(self.input.split_to(length).freeze())
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::default();
                let mut body = Vec::new();
                loop {
                    match decoder.decode(&mut self.input, &mut body, max_body) {
                        Ok(true) => return Ok(Bytes::from(body)),
                        Ok(false) => {
                            self.prepare_body_wait(head, &mut continued).await?;
                            self.read_more_body().await?;
                        }
                        Err(error) => return Err(Stop::Refuse(error)),
                    }
                }
            }
        }
    }

    fn server_headers<'a>(&self, identifier: &'a str, persistence: Persistence, extra: &'a [u8]) -> ServerHeaders<'a> {
        ServerHeaders { server: identifier.as_bytes(), extra_lines: extra, persistence }
    }

    /// Queues an answer the server writes itself.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        status: u16,
        persistence: Persistence,
        extra_lines: &[u8],
        headers: &[(&[u8], &[u8])],
        body: &[u8],
        head_only: bool,
    ) {
        let identifier = self.engine.config.server_identifier.load_full();
        let defaults = self.server_headers(&identifier, persistence, extra_lines);
        let mut bytes = Vec::with_capacity(192 + body.len());
        encode_simple(&mut bytes, status, &defaults, headers, b"text/plain; charset=utf-8", body, head_only);
        let close = persistence == Persistence::Close;
        self.pending.push_back(Pending::Ready(Outgoing { bytes, body: Bytes::new(), close }));
    }

    /// Queues the error answer for a refused request; the connection then closes.
    fn refuse(&mut self, error: RequestError) {
        let body = format!("{}: {}", crate::status::reason_phrase(error.status), error.reason);
        self.answer(error.status, Persistence::Close, b"", &[], body.as_bytes(), false);
    }

    /// Routes one request and queues its answer. Returns whether the connection closes after.
    fn dispatch(&mut self, head: RequestHead, body: Bytes) -> bool {
        let persistence = if !head.keep_alive || self.engine.is_shutting_down() {
            Persistence::Close
        } else if head.http10 {
            Persistence::KeepAliveHttp10
        } else {
            Persistence::KeepAlive
        };
        let close = persistence == Persistence::Close;
        let head_only = head.method == Method::Head;
        if head.asterisk {
            let allow: &[u8] = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
            self.answer(204, persistence, b"", &[(b"Allow", allow)], b"", false);
            return close;
        }
        // The target was checked to be ASCII by the parser.
        let raw_path = std::str::from_utf8(head.raw_path()).unwrap_or("/");
        let Some(path) = RequestPath::new(raw_path) else {
            self.refuse(RequestError::bad_request("the path is not UTF-8 once percent-decoded"));
            return true;
        };
        let config = self.engine.config.clone();
        let cors = config.cors.load();
        let cors_lines = cors.as_ref().and_then(|cors| cors.lines_for(head.first_header("origin")));
        let routes = config.routes.load();
        let Some((target, captures)) = routes.find(&path) else {
            let extra = cors_lines.as_deref().unwrap_or_default();
            self.answer(404, persistence, extra, &[], b"Not found", head_only);
            return close;
        };
        let Target::Python(route) = target;
        let handler = match head.method {
            Method::Get => Some(Handler::Get),
            Method::Head if route.handles(Handler::Head) => Some(Handler::Head),
            Method::Head => Some(Handler::Get),
            Method::Post => Some(Handler::Post),
            Method::Put => Some(Handler::Put),
            Method::Patch => Some(Handler::Patch),
            Method::Delete => Some(Handler::Delete),
            Method::Options => Some(Handler::Options),
            Method::Other(_) => None,
        };
        let handler = handler.filter(|handler| route.handles(*handler));
        let Some(handler) = handler else {
            let is_preflight = head.method == Method::Options
                && head.first_header("access-control-request-method").is_some()
                && cors_lines.is_some();
            if let (true, Some(cors)) = (is_preflight, cors.as_ref()) {
                let mut lines = cors_lines.as_deref().unwrap_or_default().to_vec();
                lines.extend_from_slice(&cors.preflight_lines());
                self.answer(204, persistence, &lines, &[], b"", false);
            } else {
                let extra = cors_lines.as_deref().unwrap_or_default();
                let allow = route.allow.clone();
                self.answer(405, persistence, extra, &[(b"Allow", allow.as_bytes())], b"Method Not Allowed", head_only);
            }
            return close;
        };
        let request = Arc::new(RequestData { path: path.decoded.into_owned(), parameters: captures.parameters, head, body });
        let (reply, receiver) = tokio::sync::oneshot::channel();
        let context = ReplyContext {
            request,
            connection: self.info.clone(),
            head_only,
            persistence,
            cors_lines,
            allow: route.allow.clone(),
            server_identifier: config.server_identifier.load_full(),
        };
        let job = Job { route: route.clone(), handler, context, reply };
        if self.engine.work.send(Work::Job(Box::new(job))).is_err() {
            self.answer(503, Persistence::Close, b"", &[], b"Service Unavailable: the server is stopping", head_only);
            return true;
        }
        self.pending.push_back(Pending::Waiting(receiver));
        close
    }

    /// Writes every pending answer, in order, in as few writes as possible.
    /// Returns `false` when the connection must close.
    async fn flush(&mut self) -> bool {
        let mut keep_open = true;
        while let Some(pending) = self.pending.pop_front() {
            let outgoing = match pending {
                Pending::Ready(outgoing) => outgoing,
                Pending::Waiting(receiver) => {
                    if !self.output.is_empty() {
                        // Do not hold finished answers back while a handler is still working.
                        let output = std::mem::take(&mut self.output);
                        let written = self.write(&output).await;
                        self.output = output;
                        self.output.clear();
                        if written.is_err() {
                            return false;
                        }
                    }
                    match receiver.await {
                        Ok(outgoing) => outgoing,
                        // The handler side went away (server stopping): nothing to send.
                        Err(_) => return false,
                    }
                }
            };
            if self.output.is_empty() && self.pending.is_empty() {
                // The only answer to write: from its own buffers, without a copy.
                if self.write_pair(&outgoing.bytes, &outgoing.body).await.is_err() {
                    return false;
                }
                return !outgoing.close;
            }
            self.output.extend_from_slice(&outgoing.bytes);
            self.output.extend_from_slice(&outgoing.body);
            if outgoing.close {
                keep_open = false;
                self.pending.clear();
                break;
            }
        }
        if !self.output.is_empty() {
            let output = std::mem::take(&mut self.output);
            let written = self.write(&output).await;
            self.output = output;
            self.output.clear();
            if written.is_err() {
                return false;
            }
        }
        keep_open
    }

    /// Writes `head` then `body` (which may be empty), in one system call when the socket
    /// takes both.
    async fn write_pair(&mut self, head: &[u8], body: &[u8]) -> Result<(), ()> {
        if body.is_empty() {
            return self.write(head).await;
        }
        let mut written = 0;
        while written < head.len() {
            let slices = [IoSlice::new(&head[written..]), IoSlice::new(body)];
            match timeout(self.engine.limits.write_timeout, self.stream.write_vectored(&slices)).await {
                Ok(Ok(n)) if n > 0 => written += n,
                _ => return Err(()),
            }
        }
        self.write(&body[written - head.len()..]).await
    }

    /// Writes all of `bytes`; a client that reads nothing for `write_timeout` is dropped.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let mut written = 0;
        while written < bytes.len() {
            match timeout(self.engine.limits.write_timeout, self.stream.write(&bytes[written..])).await {
                Ok(Ok(n)) if n > 0 => written += n,
                _ => return Err(()),
            }
        }
        Ok(())
    }
}
