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
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::app::exchange::{ConnectionInfo, Outgoing, ReplyContext, ReplyReceiver, RequestData};
use crate::app::files::{self, FileRequest, FileRoute};
use crate::app::routes::RequestPath;
use crate::http::chunked::ChunkedDecoder;
use crate::http::encode::{encode_simple, Persistence, ServerHeaders};
use crate::http::error::RequestError;
use crate::http::parse::{parse_head, Framing, Method, RequestHead};
use crate::io::engine::{Engine, Target};
use crate::io::sendfile::{send_file, send_head};
use crate::io::stream_writer::{send_stream, StreamEnd};
use crate::python::access_log::{self, AccessEvent, AccessRecord};
use crate::python::handler_threads::{Job, Work};
use crate::python::router::Handler;

/// Most requests answered in one batch before the connection writes.
const MAX_PIPELINED: usize = 32;
/// Bodies up to this size are copied out of the read buffer instead of sharing it.
const SHARE_BODY_THRESHOLD: usize = 64 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

enum Pending {
    Ready(Outgoing),
    Waiting(ReplyReceiver),
}

/// One answer to write, with the request line for the access log (when it is on).
struct Entry {
    answer: Pending,
    request_line: Option<Box<str>>,
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
    pending: VecDeque<Entry>,
    /// The request line of the request being answered, kept only when the access log is on.
    request_line: Option<Box<str>>,
    engine: Arc<Engine>,
    info: Arc<ConnectionInfo>,
    /// Whether any request has been received yet (a fresh connection waits `header_timeout`
    /// for its first byte, a kept-alive one `keepalive_timeout`).
    served_any: bool,
    /// When the head being received must be complete.
    head_deadline: Option<Instant>,
    /// When the connection last became idle (everything answered, nothing received):
    /// the idle timeout counts from here.
    last_activity: Instant,
    /// The connection's one timer, for the idle and header timeouts (see `read_head`).
    timer: Pin<Box<Sleep>>,
    /// Completes when the server starts stopping; an idle connection then closes at once.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The peer sent EOF (or the socket failed) while a handler was working.
    peer_closed: bool,
}

/// Serves one connection until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, engine: Arc<Engine>) {
    let _ = stream.set_nodelay(true);
    let info = Arc::new(ConnectionInfo::new(peer, engine.stopping.clone()));
    let horizon = engine
        .limits
        .keepalive_timeout
        .min(engine.limits.header_timeout);
    let timer = Box::pin(tokio::time::sleep(horizon));
    let shutdown = Box::pin(engine.shutdown.clone().cancelled_owned());
    let mut connection = Connection {
        stream,
        input: BytesMut::with_capacity(READ_CHUNK),
        output: Vec::with_capacity(READ_CHUNK),
        pending: VecDeque::new(),
        request_line: None,
        engine,
        info: info.clone(),
        served_any: false,
        head_deadline: None,
        last_activity: Instant::now(),
        timer,
        shutdown,
        peer_closed: false,
    };
    if let Stop::Refuse(error) = connection.run().await {
        connection.refuse(error);
        let _ = connection.flush().await;
        let _ = connection.stream.shutdown().await;
        connection.linger().await;
    } else {
        let _ = connection.stream.shutdown().await;
    }
    info.mark_closed();
}

/// How long, and how much, a refused client may still send before the socket is dropped.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Answers a connection the server has no room for: 503, then close.
pub async fn reject_busy(mut stream: TcpStream, engine: Arc<Engine>) {
    let identifier = engine.config.server_identifier.load();
    let defaults = ServerHeaders {
        server: identifier.as_bytes(),
        extra_lines: b"Retry-After: 1\r\n",
        persistence: Persistence::Close,
    };
    let mut out = Vec::with_capacity(256);
    let body = b"Service Unavailable: too many open connections";
    encode_simple(
        &mut out,
        503,
        &defaults,
        &[],
        b"text/plain; charset=utf-8",
        body,
        false,
    );
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
            if self.engine.access_log.is_some() {
                self.request_line = Some(access_log::request_line(&head));
            }
            let body = match self.read_body(&head).await {
                Ok(body) => body,
                Err(stop) => return stop,
            };
            let close = self.dispatch(head, body);
            if close {
                self.flush().await;
                return Stop::Quietly;
            }
            if self.pending.len() >= MAX_PIPELINED && !self.flush().await {
                return Stop::Quietly;
            }
        }
    }

    /// After a refusal the client may still be sending (a body we declined to read). Closing
    /// a socket with unread input makes the kernel send RST, which can destroy the error
    /// response before the client reads it; so, as nginx's lingering close does, keep reading
    /// and discarding for a short while after our FIN.
    async fn linger(&mut self) {
        let deadline = Instant::now() + LINGER_TIME;
        let mut discarded = 0;
        let mut sink = [0u8; 8192];
        while discarded < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => return,
            }
        }
    }

    /// Reads more of a request head (or waits for the next request on an idle connection).
    ///
    /// The connection keeps one timer for its whole life instead of one per read, re-armed
    /// only when it fires. It may fire early, never late: it is always armed at most
    /// `min(keepalive_timeout, header_timeout)` ahead, and every deadline is set at least that
    /// far ahead of the moment it is set. So a busy keep-alive connection pays no timer
    /// registration per request, only a wake-up every few seconds.
    async fn read_head(&mut self) -> Result<(), Stop> {
        let idle = self.input.is_empty() && self.head_deadline.is_none();
        if idle {
            if self.engine.is_shutting_down() {
                return Err(Stop::Quietly);
            }
            // Everything is answered: the idle time counts from now.
            self.last_activity = Instant::now();
        }
        loop {
            self.input.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.input) => {
                    return match read {
                        Ok(n) if n > 0 => {
                            if self.head_deadline.is_none() {
                                self.start_head_deadline();
                            }
                            Ok(())
                        }
                        _ => Err(Stop::Quietly),
                    };
                }
                () = self.timer.as_mut() => {
                    let deadline = self.current_deadline();
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(match self.head_deadline {
                            // Part of a head is here, and the rest did not come in time,
                            // however slowly it trickled (a slowloris client gets 408).
                            Some(_) => Stop::Refuse(RequestError::new(
                                408,
                                "request header section not received in time",
                            )),
                            None => Stop::Quietly,
                        });
                    }
                    let rearm = deadline.min(now + self.timer_horizon());
                    self.timer.as_mut().reset(rearm);
                }
                () = self.shutdown.as_mut(), if idle => return Err(Stop::Quietly),
            }
        }
    }

    /// The first byte of a head arrived: it must be complete within `header_timeout` (the
    /// timer is already armed no later than that, see `read_head`).
    fn start_head_deadline(&mut self) {
        self.head_deadline = Some(Instant::now() + self.engine.limits.header_timeout);
    }

    /// How far ahead the timer is ever armed.
    fn timer_horizon(&self) -> Duration {
        let limits = &self.engine.limits;
        limits.keepalive_timeout.min(limits.header_timeout)
    }

    /// When the connection gives up waiting: the head's deadline while one is arriving,
    /// else the idle timeout counted from the last answer (or from the accept).
    fn current_deadline(&self) -> Instant {
        match self.head_deadline {
            Some(deadline) => deadline,
            None if self.served_any => self.last_activity + self.engine.limits.keepalive_timeout,
            None => self.last_activity + self.engine.limits.header_timeout,
        }
    }

    async fn read_more_body(&mut self) -> Result<(), Stop> {
        self.input.reserve(READ_CHUNK);
        match timeout(
            self.engine.limits.body_timeout,
            self.stream.read_buf(&mut self.input),
        )
        .await
        {
            Err(_) => Err(Stop::Refuse(RequestError::new(408, "request body stalled"))),
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Quietly),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Before waiting for a body that is not buffered yet: answer what is pending, and say
    /// `100 Continue` if the client waits for it (RFC 9110 §10.1.1).
    async fn prepare_body_wait(
        &mut self,
        head: &RequestHead,
        continued: &mut bool,
    ) -> Result<(), Stop> {
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
                    return Err(Stop::Refuse(RequestError::new(
                        413,
                        "request body too large",
                    )));
                }
                let length = length as usize;
                if self.input.len() < length {
                    self.prepare_body_wait(head, &mut continued).await?;
                    self.input.reserve(length - self.input.len());
                    while self.input.len() < length {
                        self.read_more_body().await?;
                    }
                }
                // Small bodies are copied (see `parse_head`); large ones take the buffer along.
                if length <= SHARE_BODY_THRESHOLD {
                    let body = Bytes::copy_from_slice(&self.input[..length]);
                    self.input.advance(length);
                    Ok(body)
                } else {
                    Ok(self.input.split_to(length).freeze())
                }
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

    fn server_headers<'a>(
        &self,
        identifier: &'a str,
        persistence: Persistence,
        extra: &'a [u8],
    ) -> ServerHeaders<'a> {
        ServerHeaders {
            server: identifier.as_bytes(),
            extra_lines: extra,
            persistence,
        }
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
        encode_simple(
            &mut bytes,
            status,
            &defaults,
            headers,
            b"text/plain; charset=utf-8",
            body,
            head_only,
        );
        let outgoing = Outgoing {
            bytes,
            body: Bytes::new(),
            close: persistence == Persistence::Close,
            file: None,
            stream: None,
        };
        self.push(Pending::Ready(outgoing));
    }

    /// Queues the error answer for a refused request; the connection then closes.
    fn refuse(&mut self, error: RequestError) {
        let body = format!(
            "{}: {}",
            crate::http::status::reason_phrase(error.status),
            error.reason
        );
        self.answer(
            error.status,
            Persistence::Close,
            b"",
            &[],
            body.as_bytes(),
            false,
        );
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
            self.refuse(RequestError::bad_request(
                "the path is not UTF-8 once percent-decoded",
            ));
            return true;
        };
        let config = self.engine.config.clone();
        let cors = config.cors.load();
        let cors_lines = cors
            .as_ref()
            .and_then(|cors| cors.lines_for(head.first_header("origin")));
        let routes = config.routes.load();
        let Some((target, captures)) = routes.find(&path) else {
            let extra = cors_lines.as_deref().unwrap_or_default();
            self.answer(404, persistence, extra, &[], b"Not found", head_only);
            return close;
        };
        let route = match target {
            Target::Python(route) => route,
            Target::Files(files) => {
                let files = files.clone();
                let tail = path
                    .raw_tail(captures.prefix_len)
                    .iter()
                    .map(|segment| (*segment).to_owned())
                    .collect();
                drop(path);
                let identifier = config.server_identifier.load_full();
                self.dispatch_files(files, head, tail, persistence, cors_lines, identifier);
                return close;
            }
        };
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
                self.answer(
                    405,
                    persistence,
                    extra,
                    &[(b"Allow", allow.as_bytes())],
                    b"Method Not Allowed",
                    head_only,
                );
            }
            return close;
        };
        let request = Arc::new(RequestData {
            path: path.into_decoded(),
            parameters: captures.parameters,
            head,
            body,
        });
        let (reply, receiver) = tokio::sync::oneshot::channel();
        let context = ReplyContext {
            request,
            connection: self.info.clone(),
            head_only,
            persistence,
            cors_lines,
            allow: route.allow.clone(),
            server_identifier: config.server_identifier.load_full(),
            stream_buffer: self.engine.limits.stream_buffer,
        };
        let job = Job {
            route: route.clone(),
            handler,
            context,
            reply,
        };
        if !self.engine.submit(Work::Job(Box::new(job))) {
            self.answer(
                503,
                Persistence::Close,
                b"",
                &[],
                b"Service Unavailable: the server is stopping",
                head_only,
            );
            return true;
        }
        self.push(Pending::Waiting(receiver));
        close
    }

    /// Queues an answer, in request order.
    fn push(&mut self, answer: Pending) {
        let request_line = match self.engine.access_log {
            Some(_) => Some(self.request_line.take().unwrap_or_else(|| "-".into())),
            None => None,
        };
        self.pending.push_back(Entry {
            answer,
            request_line,
        });
    }

    /// Answers a file-router request on this thread (RFC 9110 §9.1: a file router
    /// implements GET and HEAD only; anything else is 405 with `Allow: GET, HEAD`).
    #[allow(clippy::too_many_arguments)]
    fn dispatch_files(
        &mut self,
        route: Arc<FileRoute>,
        head: RequestHead,
        tail: Vec<String>,
        persistence: Persistence,
        cors_lines: Option<Arc<[u8]>>,
        server_identifier: Arc<Box<str>>,
    ) {
        let head_only = head.method == Method::Head;
        if !matches!(head.method, Method::Get | Method::Head) {
            let cors = self.engine.config.cors.load();
            let is_preflight = head.method == Method::Options
                && head.first_header("access-control-request-method").is_some();
            let extra = cors_lines.as_deref().unwrap_or_default();
            match (is_preflight, cors.as_ref(), cors_lines.as_ref()) {
                (true, Some(cors), Some(_)) => {
                    let mut lines = extra.to_vec();
                    lines.extend_from_slice(&cors.preflight_lines());
                    self.answer(204, persistence, &lines, &[], b"", false);
                }
                _ => self.answer(
                    405,
                    persistence,
                    extra,
                    &[(b"Allow", b"GET, HEAD")],
                    b"Method Not Allowed",
                    head_only,
                ),
            }
            return;
        }
        let trailing_slash = head.raw_path().ends_with(b"/");
        let request = FileRequest {
            head,
            tail,
            trailing_slash,
            head_only,
            persistence,
            cors_lines,
            server_identifier,
        };
        // The file system calls (stat, open, realpath) run right here on the I/O thread, as
        // nginx runs them in its event loop: on a local disk they take microseconds, far less
        // than handing the request to the blocking pool and back. The bytes themselves go
        // out with sendfile(2), without blocking.
        let outgoing = files::respond(&route, &request);
        self.push(Pending::Ready(outgoing));
    }

    /// Writes every pending answer, in order, in as few writes as possible; a file body is
    /// streamed after the head before it. Returns `false` when the connection must close.
    async fn flush(&mut self) -> bool {
        let mut keep_open = true;
        while let Some(Entry {
            answer,
            request_line,
        }) = self.pending.pop_front()
        {
            let outgoing = match answer {
                Pending::Ready(outgoing) => outgoing,
                Pending::Waiting(receiver) => {
                    // Do not hold finished answers back while a handler is still working.
                    if !self.write_output().await {
                        return false;
                    }
                    match self.await_reply(receiver).await {
                        Ok(outgoing) => outgoing,
                        // The handler side went away (server stopping): nothing to send.
                        Err(_) => return false,
                    }
                }
            };
            self.record(request_line, &outgoing);
            if outgoing.file.is_none()
                && outgoing.stream.is_none()
                && self.output.is_empty()
                && self.pending.is_empty()
            {
                // The only answer to write: from its own buffers, without a copy.
                if self
                    .write_pair(&outgoing.bytes, &outgoing.body)
                    .await
                    .is_err()
                {
                    return false;
                }
                return !outgoing.close;
            }
            self.output.extend_from_slice(&outgoing.bytes);
            self.output.extend_from_slice(&outgoing.body);
            if let Some(body) = &outgoing.file {
                let write_timeout = self.engine.limits.write_timeout;
                // With a body to follow, the head is corked onto its first packets; an empty
                // file's head goes out as usual (nothing would uncork it).
                let head_sent = if body.len > 0 {
                    let sent = send_head(&self.stream, &self.output, write_timeout).await;
                    self.output.clear();
                    sent.is_ok()
                } else {
                    self.write_output().await
                };
                if !head_sent {
                    return false;
                }
                if send_file(&self.stream, body, write_timeout).await.is_err() {
                    return false;
                }
            }
            if let Some(body) = outgoing.stream {
                // The head (and the answers before it) go out at once, then each piece as
                // the handler writes it (see `stream_writer`).
                if !self.write_output().await {
                    return false;
                }
                let max_input = self.engine.limits.max_head_size;
                let write_timeout = self.engine.limits.write_timeout;
                let end = send_stream(
                    &mut self.stream,
                    &mut self.input,
                    max_input,
                    body,
                    write_timeout,
                )
                .await;
                if end == StreamEnd::Failed {
                    self.peer_closed = true;
                    self.info.mark_closed();
                    return false;
                }
            }
            if outgoing.close {
                keep_open = false;
                self.pending.clear();
                break;
            }
        }
        self.write_output().await && keep_open
    }

    /// Writes the buffered answers; `false` when the connection must close.
    async fn write_output(&mut self) -> bool {
        if self.output.is_empty() {
            return true;
        }
        let output = std::mem::take(&mut self.output);
        let written = self.write(&output).await;
        self.output = output;
        self.output.clear();
        written.is_ok()
    }

    /// Hands one answered request to the access log, when it is on.
    fn record(&self, request_line: Option<Box<str>>, outgoing: &Outgoing) {
        let (Some(sender), Some(request_line)) = (&self.engine.access_log, request_line) else {
            return;
        };
        let (status, bytes) = access_log::measure(outgoing);
        let record = AccessRecord {
            peer: self.info.peer,
            request_line,
            status,
            bytes,
            time: std::time::SystemTime::now(),
        };
        let _ = sender.send(AccessEvent::Record(record));
    }

    /// Waits for a handler's answer while watching the socket, so that `client.is_open` turns
    /// false as soon as the peer goes away. Bytes that arrive meanwhile (pipelined requests)
    /// are kept for later, up to one head's worth; the answer is still written after an EOF,
    /// since a client may half-close and wait for it.
    async fn await_reply(
        &mut self,
        mut receiver: ReplyReceiver,
    ) -> Result<Outgoing, tokio::sync::oneshot::error::RecvError> {
        loop {
            if self.peer_closed || self.input.len() >= self.engine.limits.max_head_size {
                return receiver.await;
            }
            self.input.reserve(READ_CHUNK);
            tokio::select! {
                reply = &mut receiver => return reply,
                read = self.stream.read_buf(&mut self.input) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        self.peer_closed = true;
                        self.info.mark_closed();
                    }
                }
            }
        }
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
            match timeout(
                self.engine.limits.write_timeout,
                self.stream.write_vectored(&slices),
            )
            .await
            {
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
            match timeout(
                self.engine.limits.write_timeout,
                self.stream.write(&bytes[written..]),
            )
            .await
            {
                Ok(Ok(n)) if n > 0 => written += n,
                _ => return Err(()),
            }
        }
        Ok(())
    }
}
