//! One client connection: read, parse, route, answer in order, repeat.
//!
//! The connection knows the protocol only: framing, pipelining, `100-continue`, timers,
//! persistence and lingering close. What a request means is decided by
//! [`crate::app::decide::decide`]; a request that needs a handler is handed to the
//! [`Application`] as a job. It is generic over its byte stream ([`Transport`]), so it
//! runs on TCP, on TLS, and on scripted I/O in the tests (`connection_tests.rs`).
//!
//! Requests are taken off the input buffer one at a time; each becomes a pending answer,
//! either ready at once (404, 405, errors, preflights, files) or waiting for a handler.
//! Pipelined requests already in the buffer are all routed before any answer is awaited,
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
use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::{timeout, timeout_at, Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::app::answer::ServerAnswer;
use crate::app::config::HandlerRoute;
use crate::app::decide::{decide, Decision};
use crate::app::exchange::{
    request_line, AccessEvent, AccessRecord, ConnectionInfo, Job, Outgoing, ReplyReceiver, Scheme,
};
use crate::app::files;
use crate::app::upload::{BodyError, BodyQueue, RequestBody};
use crate::http::chunked::ChunkedDecoder;
use crate::http::encode::Persistence;
use crate::http::error::RequestError;
use crate::http::parse::{parse_head, Framing, RequestHead};
use crate::io::engine::{Application, Engine};
use crate::io::proxy_header::read_proxy_header;
use crate::io::stream_writer::{send_stream, StreamEnd};
use crate::io::transport::Transport;

/// Most requests answered in one batch before the connection writes.
const MAX_PIPELINED: usize = 32;
/// Bodies up to this size are copied out of the read buffer instead of sharing it.
const SHARE_BODY_THRESHOLD: usize = 64 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// How long, and how much, a refused client may still send before the socket is dropped.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// Most bytes of a streamed body its handler gave up that are read and dropped so that the
/// connection can go on; past this, it closes after the answer instead.
const DISCARD_LIMIT: usize = 1024 * 1024;

/// An answer in the queue: ready to write, or still with its handler.
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
    /// What is pending is answered, then the connection closes, lingering: the client may
    /// still be sending a body nobody reads (a streamed body refused or given up).
    AfterPending,
}

/// Whether the connection goes on after writing what is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flushed {
    Open,
    Closed,
}

struct Connection<T: Transport, A: Application> {
    stream: T,
    input: BytesMut,
    output: Vec<u8>,
    pending: VecDeque<Entry>,
    /// The request line of the request being answered, kept only when the access log is on.
    request_line: Option<Box<str>>,
    engine: Arc<Engine<A>>,
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
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// Serves one connection until it closes.
pub async fn serve<T: Transport, A: Application>(
    mut stream: T,
    peer: SocketAddr,
    scheme: Scheme,
    engine: Arc<Engine<A>>,
) {
    let accepted_at = Instant::now();
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    // With `proxy_protocol=True` the PROXY header comes first and names the client; it and
    // the first request head share one `header_timeout`.
    let (peer, head_deadline) = if engine.proxies.proxy_protocol {
        let deadline = accepted_at + engine.limits.header_timeout;
        match read_proxy_header(&mut stream, &mut input, peer, deadline).await {
            Some(source) => (source, Some(deadline)),
            None => return,
        }
    } else {
        (peer, None)
    };
    let start = Start {
        input,
        head_deadline,
        accepted_at,
    };
    serve_from(stream, peer, scheme, engine, start).await;
}

/// Serves a connection accepted at `accepted_at` whose client is `peer` (a PROXY header, if
/// any, already read): the wait for its first request counts from the accept, so that time
/// spent before (a TLS handshake) counts against `header_timeout`.
pub async fn serve_accepted<T: Transport, A: Application>(
    stream: T,
    peer: SocketAddr,
    scheme: Scheme,
    engine: Arc<Engine<A>>,
    accepted_at: Instant,
) {
    let start = Start {
        input: BytesMut::with_capacity(READ_CHUNK),
        head_deadline: None,
        accepted_at,
    };
    serve_from(stream, peer, scheme, engine, start).await;
}

/// How a connection starts: what is already read, and its clocks.
struct Start {
    input: BytesMut,
    head_deadline: Option<Instant>,
    accepted_at: Instant,
}

async fn serve_from<T: Transport, A: Application>(
    stream: T,
    peer: SocketAddr,
    scheme: Scheme,
    engine: Arc<Engine<A>>,
    start: Start,
) {
    let Start {
        input,
        head_deadline,
        accepted_at,
    } = start;
    let info = Arc::new(
        ConnectionInfo::new(peer, scheme, engine.stop.clone())
            .behind(engine.proxies.clone())
            .with_stream_buffer(engine.limits.stream_buffer),
    );
    let horizon = timer_horizon(&engine);
    let mut connection = Connection {
        stream,
        input,
        // Allocated at the first answer that needs it (most go out from their own buffers,
        // see `flush`).
        output: Vec::new(),
        pending: VecDeque::new(),
        request_line: None,
        timer: Box::pin(tokio::time::sleep_until(accepted_at + horizon)),
        stopping: Box::pin(engine.stop.clone().cancelled_owned()),
        engine,
        info: info.clone(),
        served_any: false,
        head_deadline,
        last_activity: accepted_at,
    };
    match connection.run().await {
        Stop::Refuse(error) => {
            connection.refuse(error);
            let _ = connection.flush().await;
            let _ = connection.shutdown().await;
            connection.linger().await;
        }
        Stop::AfterPending => {
            let _ = connection.flush().await;
            let _ = connection.shutdown().await;
            connection.linger().await;
        }
        Stop::Quietly => {
            let _ = connection.shutdown().await;
        }
    }
    info.mark_closed();
}

/// Answers a connection the server has no room for: 503, then close.
pub async fn reject_busy<T: Transport, A: Application>(mut stream: T, engine: Arc<Engine<A>>) {
    let identifier = engine.config.server_identifier.load();
    let answer = ServerAnswer {
        server_identifier: &identifier,
        persistence: Persistence::Close,
        extra_lines: b"Retry-After: 1\r\n",
        head_only: false,
    };
    let out = answer.text(503, &[], b"Service Unavailable: too many open connections");
    let _ = timeout(Duration::from_secs(1), stream.write_all(&out.bytes)).await;
    let _ = stream.shutdown().await;
}

/// How far ahead the connection's timer is ever armed.
fn timer_horizon<A: Application>(engine: &Engine<A>) -> Duration {
    let limits = &engine.limits;
    limits.keepalive_timeout.min(limits.header_timeout)
}

impl<T: Transport, A: Application> Connection<T, A> {
    async fn run(&mut self) -> Stop {
        loop {
            let head = match parse_head(&mut self.input, &self.engine.limits) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    let buffered = self.input.len();
                    if self.flush().await == Flushed::Closed {
                        return Stop::Quietly;
                    }
                    if self.input.len() > buffered {
                        // Pipelined bytes arrived while a handler worked (`await_reply` keeps
                        // them): parse them before waiting on the socket, which may stay
                        // silent now that the client has sent everything.
                        continue;
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
                self.request_line = Some(request_line(&head));
            }
            let after = match self.route(head).await {
                Ok(after) => after,
                Err(stop) => return stop,
            };
            if after == Flushed::Closed {
                self.flush().await;
                return Stop::Quietly;
            }
            if self.pending.len() >= MAX_PIPELINED && self.flush().await == Flushed::Closed {
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
        // On the heap, not in the future: an array here would sit in every connection's
        // task, lingering or not (8 KiB each of 10,000 idle event streams).
        let mut sink = vec![0u8; 8192];
        while discarded < LINGER_BYTES {
            match timeout_at(deadline, self.stream.read(&mut sink)).await {
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
            if self.engine.is_stopping() {
                return Err(Stop::Quietly);
            }
            // Everything is answered: the idle time counts from now (a fresh connection's
            // from its accept).
            if self.served_any {
                self.last_activity = Instant::now();
            }
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
                    let rearm = deadline.min(now + timer_horizon(&self.engine));
                    self.timer.as_mut().reset(rearm);
                }
                () = self.stopping.as_mut(), if idle => return Err(Stop::Quietly),
            }
        }
    }

    /// The first byte of a head arrived: it must be complete within `header_timeout` (the
    /// timer is already armed no later than that, see `read_head`).
    fn start_head_deadline(&mut self) {
        self.head_deadline = Some(Instant::now() + self.engine.limits.header_timeout);
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

    /// Reads more of a body. A read that brings nothing for `body_timeout` is a stall
    /// (408); so is a body whose average rate since `rate.started` has fallen below
    /// `min_body_rate` once the grace period is over.
    async fn read_more_body(&mut self, rate: &BodyRate) -> Result<(), Stop> {
        self.input.reserve(READ_CHUNK);
        let limits = &self.engine.limits;
        let stall_deadline = Instant::now() + limits.body_timeout;
        let rate_deadline = rate.deadline(limits.min_body_rate, limits.body_rate_grace);
        let deadline = rate_deadline.map_or(stall_deadline, |rate| rate.min(stall_deadline));
        match timeout_at(deadline, self.stream.read_buf(&mut self.input)).await {
            Err(_) if rate_deadline.is_some_and(|rate| rate < stall_deadline) => Err(Stop::Refuse(
                RequestError::new(408, "request body arrived too slowly"),
            )),
            Err(_) => Err(Stop::Refuse(RequestError::new(408, "request body stalled"))),
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Quietly),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Before waiting for a body that is not buffered yet: answer what is pending, and say
    /// `100 Continue` if the client waits for it (RFC 9110 §10.1.1).
    async fn prepare_body_wait(
        &mut self,
        head: &BodyHead,
        continued: &mut bool,
    ) -> Result<(), Stop> {
        if self.flush().await == Flushed::Closed {
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

    /// Reads a whole body of at most `max_body` bytes.
    async fn read_body(&mut self, head: &BodyHead, max_body: u64) -> Result<Bytes, Stop> {
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
                    // Waiting for earlier answers may have read more (pipelined bytes): the
                    // body may be here now, and more than it.
                    let rate = BodyRate::start(self.input.len());
                    self.input.reserve(length.saturating_sub(self.input.len()));
                    while self.input.len() < length {
                        self.read_more_body(&rate.with_received(self.input.len()))
                            .await?;
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
                let mut rate: Option<BodyRate> = None;
                let mut consumed = 0;
                loop {
                    let before = self.input.len();
                    let decoded = decoder.decode(&mut self.input, &mut body, max_body);
                    consumed += before - self.input.len();
                    match decoded {
                        Ok(true) => return Ok(Bytes::from(body)),
                        Ok(false) => {
                            self.prepare_body_wait(head, &mut continued).await?;
                            let started = *rate.get_or_insert_with(|| BodyRate::start(consumed));
                            let received = consumed + self.input.len();
                            self.read_more_body(&started.with_received(received))
                                .await?;
                        }
                        Err(error) => return Err(Stop::Refuse(error)),
                    }
                }
            }
        }
    }

    /// Routes one request, reads its body as its route says, and queues its answer.
    /// Returns whether the connection closes after.
    async fn route(&mut self, head: RequestHead) -> Result<Flushed, Stop> {
        let server_limit = self.engine.limits.max_body_size;
        let framing = head.framing;
        let expect_continue = head.expect_continue;
        // Only a handler route needs the head after routing; the others need the body read
        // (and dropped) first, to find the next request.
        let body_head = BodyHead {
            framing,
            expect_continue,
        };
        let routed = decide(&self.engine.config, head, &self.info);
        let after = match routed.persistence {
            Persistence::Close => Flushed::Closed,
            _ => Flushed::Open,
        };
        match routed.decision {
            Decision::Answer(outgoing) => {
                self.skip_body(&body_head, server_limit).await?;
                self.push(Pending::Ready(outgoing));
            }
            Decision::Refuse(error) => {
                self.refuse(error);
                return Ok(Flushed::Closed);
            }
            Decision::Files(route, request) => {
                self.skip_body(&body_head, server_limit).await?;
                // The file system calls (stat, open, realpath) run right here on the I/O
                // thread, as nginx runs them in its event loop: on a local disk they take
                // microseconds, far less than handing the request to a blocking pool and
                // back. The bytes themselves go out without blocking (see `transport.rs`).
                let outgoing = files::respond(&route, &request);
                self.push(Pending::Ready(outgoing));
            }
            Decision::Handler {
                route,
                method,
                context,
            } => {
                let policy = route.body_policy();
                let limit = policy.limit(server_limit);
                if !policy.streamed {
                    let body = self.read_body(&body_head, limit).await?;
                    let context = context.with_body(RequestBody::Whole(body));
                    return Ok(self.submit(route, method, context).unwrap_or(after));
                }
                if let Framing::Length(length) = framing {
                    if length > limit {
                        return Err(Stop::Refuse(RequestError::new(
                            413,
                            "request body too large",
                        )));
                    }
                }
                if framing == Framing::Empty {
                    // Nothing to read: an empty stream, already complete.
                    let queue = BodyQueue::new(1);
                    queue.complete();
                    let context = context.with_body(RequestBody::Streamed(queue));
                    return Ok(self.submit(route, method, context).unwrap_or(after));
                }
                // The answers before this one go out first: from here until its body is
                // read, the connection serves this request only.
                if self.flush().await == Flushed::Closed {
                    return Err(Stop::Quietly);
                }
                let queue = BodyQueue::new(self.info.stream_buffer);
                let context = context.with_body(RequestBody::Streamed(queue.clone()));
                if let Some(closed) = self.submit(route, method, context) {
                    return Ok(closed);
                }
                self.stream_body(&body_head, limit, &queue).await?;
            }
        }
        Ok(after)
    }

    /// Hands a job to the application and queues its answer; `Some(Closed)` when the
    /// application takes no more jobs (503, then close).
    fn submit(
        &mut self,
        route: Arc<A::Route>,
        method: crate::http::method::KnownMethod,
        context: crate::app::exchange::ReplyContext,
    ) -> Option<Flushed> {
        let head_only = context.head_only;
        let (reply, receiver) = tokio::sync::oneshot::channel();
        let job = Job {
            route,
            method,
            context,
            reply,
        };
        if !self.engine.app.submit(job) {
            let identifier = self.engine.config.server_identifier.load();
            let answer = ServerAnswer {
                server_identifier: &identifier,
                persistence: Persistence::Close,
                extra_lines: b"",
                head_only,
            };
            let outgoing = answer.text(503, &[], b"Service Unavailable: the server is stopping");
            self.push(Pending::Ready(outgoing));
            return Some(Flushed::Closed);
        }
        self.push(Pending::Waiting(receiver));
        None
    }

    /// Reads and drops the body of a request the server answers itself.
    async fn skip_body(&mut self, head: &BodyHead, max_body: u64) -> Result<(), Stop> {
        if head.framing != Framing::Empty {
            self.read_body(head, max_body).await?;
        }
        Ok(())
    }

    /// Feeds a streamed body to its handler as it arrives (see `app::upload`).
    ///
    /// Nothing is read, and `100 Continue` is not sent, until the handler first reads. Each
    /// piece goes to the handler's queue; while the queue is full, the socket is not read.
    /// A stall or a slow body ends it as for a whole body, except that the handler's read
    /// raises (its answer, `408` if it lets the error escape, goes out before the close).
    /// If the handler gives the body up, the rest is read and dropped, up to
    /// `DISCARD_LIMIT`, so that the connection can go on; past it, or if the client still
    /// waits for `100 Continue`, the connection closes after the answer.
    async fn stream_body(
        &mut self,
        head: &BodyHead,
        limit: u64,
        queue: &BodyQueue,
    ) -> Result<(), Stop> {
        if queue.demanded().await.is_err() {
            if head.expect_continue {
                return Err(Stop::AfterPending);
            }
            return self.discard_body(head.framing, 0, None).await;
        }
        if head.expect_continue && self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            queue.fail(BodyError::Gone);
            return Err(Stop::Quietly);
        }
        let mut rate = BodyRate::start(self.input.len());
        // Body bytes taken out of `input` since `rate` started.
        let mut taken = 0usize;
        let mut decoder = ChunkedDecoder::default();
        let mut remaining = match head.framing {
            Framing::Length(length) => length,
            _ => 0,
        };
        let mut delivered: u64 = 0;
        loop {
            let piece = match head.framing {
                Framing::Length(_) if remaining == 0 => {
                    queue.complete();
                    return Ok(());
                }
                Framing::Length(_) => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.input.len());
                    remaining -= n as u64;
                    self.input.split_to(n).freeze()
                }
                _ => {
                    let before = self.input.len();
                    let mut piece = Vec::new();
                    let decoded = decoder.decode(
                        &mut self.input,
                        &mut piece,
                        limit.saturating_sub(delivered),
                    );
                    taken += before - self.input.len();
                    match decoded {
                        Ok(done) => {
                            delivered += piece.len() as u64;
                            if done {
                                if !piece.is_empty()
                                    && queue.push(Bytes::from(piece)).await.is_err()
                                {
                                    return Ok(());
                                }
                                queue.complete();
                                return Ok(());
                            }
                            Bytes::from(piece)
                        }
                        Err(error) => {
                            queue.fail(BodyError::Refused(error));
                            return Err(Stop::AfterPending);
                        }
                    }
                }
            };
            if let Framing::Length(_) = head.framing {
                taken += piece.len();
            }
            if !piece.is_empty() {
                match queue.push(piece).await {
                    // The handler held the body back: the client's rate counts afresh from
                    // now (a slow handler must not make a fast client look slow).
                    Ok(true) => {
                        rate = BodyRate::start(self.input.len());
                        taken = 0;
                    }
                    Ok(false) => {}
                    Err(_) => {
                        return self
                            .discard_body(head.framing, remaining, Some(decoder))
                            .await;
                    }
                }
                continue;
            }
            let received = taken + self.input.len();
            if let Err(stop) = self.read_more_body(&rate.with_received(received)).await {
                return Err(match stop {
                    Stop::Refuse(error) => {
                        queue.fail(BodyError::Refused(error));
                        Stop::AfterPending
                    }
                    other => {
                        queue.fail(BodyError::Gone);
                        self.info.mark_closed();
                        other
                    }
                });
            }
        }
    }

    /// Reads and drops the rest of a body its handler gave up: `remaining` bytes of a
    /// `Content-Length` body, or the rest of a chunked one (`decoder` holds its state).
    async fn discard_body(
        &mut self,
        framing: Framing,
        remaining: u64,
        decoder: Option<ChunkedDecoder>,
    ) -> Result<(), Stop> {
        let mut remaining = match framing {
            Framing::Length(length) if decoder.is_none() && remaining == 0 => length,
            _ => remaining,
        };
        let mut decoder = decoder.unwrap_or_default();
        let mut discarded: usize = 0;
        let rate = BodyRate::start(self.input.len());
        let mut scratch = Vec::new();
        loop {
            match framing {
                Framing::Empty => return Ok(()),
                Framing::Length(_) => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.input.len());
                    self.input.advance(n);
                    remaining -= n as u64;
                    discarded += n;
                    if remaining == 0 {
                        return Ok(());
                    }
                    if remaining > DISCARD_LIMIT as u64 {
                        return Err(Stop::AfterPending);
                    }
                }
                Framing::Chunked => {
                    let before = self.input.len();
                    scratch.clear();
                    let decoded = decoder.decode(&mut self.input, &mut scratch, u64::MAX);
                    discarded += before - self.input.len();
                    match decoded {
                        Ok(true) => return Ok(()),
                        Ok(false) => {}
                        Err(_) => return Err(Stop::AfterPending),
                    }
                }
            }
            if discarded > DISCARD_LIMIT {
                return Err(Stop::AfterPending);
            }
            let received = discarded + self.input.len();
            match self.read_more_body(&rate.with_received(received)).await {
                Ok(()) => {}
                Err(Stop::Refuse(_)) => return Err(Stop::AfterPending),
                Err(stop) => return Err(stop),
            }
        }
    }

    /// Queues the error answer for a refused request; the connection then closes.
    fn refuse(&mut self, error: RequestError) {
        let identifier = self.engine.config.server_identifier.load();
        let outgoing = ServerAnswer::refusal(&identifier, error.status, error.reason);
        self.push(Pending::Ready(outgoing));
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

    /// Writes every pending answer, in order, in as few writes as possible; a file body is
    /// streamed after the head before it.
    async fn flush(&mut self) -> Flushed {
        let mut after = Flushed::Open;
        while let Some(Entry {
            answer,
            request_line,
        }) = self.pending.pop_front()
        {
            let mut outgoing = match answer {
                Pending::Ready(outgoing) => outgoing,
                Pending::Waiting(mut receiver) => match receiver.try_recv() {
                    // Answered already (pipelined requests answered in one round): it joins
                    // the answers before it in the same write.
                    Ok(outgoing) => outgoing,
                    Err(TryRecvError::Closed) => return Flushed::Closed,
                    Err(TryRecvError::Empty) => {
                        // Do not hold finished answers back while a handler is still working.
                        if self.write_output().await.is_err() {
                            return Flushed::Closed;
                        }
                        match self.await_reply(receiver).await {
                            Some(outgoing) => outgoing,
                            // The client left, or the handler side went away (server
                            // stopping): nothing to send.
                            None => return Flushed::Closed,
                        }
                    }
                },
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
                    return Flushed::Closed;
                }
                return if outgoing.close {
                    Flushed::Closed
                } else {
                    Flushed::Open
                };
            }
            self.output.extend_from_slice(&outgoing.bytes);
            self.output.extend_from_slice(&outgoing.body);
            // Copied: freed now rather than held for as long as a stream after them runs.
            outgoing.bytes = Vec::new();
            outgoing.body = Bytes::new();
            if let Some(body) = &outgoing.file {
                let write_timeout = self.engine.limits.write_timeout;
                let head = std::mem::take(&mut self.output);
                let sent = self
                    .stream
                    .send_file_answer(&head, body, write_timeout)
                    .await;
                self.output = head;
                self.output.clear();
                if sent.is_err() {
                    return Flushed::Closed;
                }
            }
            if let Some(body) = outgoing.stream {
                // The head (and the answers before it) go out at once, then each piece as
                // the handler writes it (see `stream_writer`).
                if self.write_output().await.is_err() {
                    return Flushed::Closed;
                }
                let max_input = self.engine.limits.max_head_size;
                let write_timeout = self.engine.limits.write_timeout;
                // A stream may stay open for hours with nothing but a heartbeat to send
                // (an event stream): meanwhile the connection gives back its read and write
                // buffers (`READ_CHUNK` the first), allocated again when next needed, so that
                // 10,000 idle event streams cost little memory. Pipelined bytes read stay.
                self.output = Vec::new();
                if self.input.is_empty() {
                    self.input = BytesMut::new();
                }
                let end = send_stream(
                    &mut self.stream,
                    &mut self.input,
                    max_input,
                    body,
                    write_timeout,
                )
                .await;
                if end == StreamEnd::Failed {
                    self.info.mark_closed();
                    return Flushed::Closed;
                }
            }
            if outgoing.close {
                after = Flushed::Closed;
                self.pending.clear();
                break;
            }
        }
        if self.write_output().await.is_err() {
            return Flushed::Closed;
        }
        after
    }

    /// Writes the buffered answers.
    async fn write_output(&mut self) -> Result<(), ()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let output = std::mem::take(&mut self.output);
        let written = self.write(&output).await;
        self.output = output;
        self.output.clear();
        written
    }

    /// Hands one answered request to the access log, when it is on.
    fn record(&self, request_line: Option<Box<str>>, outgoing: &Outgoing) {
        let (Some(sender), Some(request_line)) = (&self.engine.access_log, request_line) else {
            return;
        };
        let record = AccessRecord {
            peer: self.info.peer,
            request_line,
            status: outgoing.status,
            bytes: outgoing.body_len(),
            time: std::time::SystemTime::now(),
        };
        let _ = sender.send(AccessEvent::Record(record));
    }

    /// Waits for a handler's answer while watching the socket. Bytes that arrive meanwhile
    /// (pipelined requests) are kept for later, up to one head's worth. If the peer closes
    /// (EOF or an error), it is gone: `client.is_open` turns false, the connection ends and
    /// frees its slot at once, and the answer, when it comes, goes nowhere (as nginx treats
    /// a client that closes while its request is being handled). `None` then, or when the
    /// handler side is gone.
    async fn await_reply(&mut self, mut receiver: ReplyReceiver) -> Option<Outgoing> {
        loop {
            if self.input.len() >= self.engine.limits.max_head_size {
                // Enough is buffered; the rest waits in the kernel until this answer is out.
                return receiver.await.ok();
            }
            self.input.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                reply = &mut receiver => return reply.ok(),
                read = self.stream.read_buf(&mut self.input) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        self.info.mark_closed();
                        return None;
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

    /// Closes our side. Bounded by `write_timeout`: on TLS this writes what is still
    /// buffered and the `close_notify` alert, which a client that reads nothing never takes.
    async fn shutdown(&mut self) -> Result<(), ()> {
        match timeout(self.engine.limits.write_timeout, self.stream.shutdown()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Writes all of `bytes`; a client that reads nothing for `write_timeout` is dropped.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let write_timeout = self.engine.limits.write_timeout;
        let mut written = 0;
        while written < bytes.len() {
            match timeout(write_timeout, self.stream.write(&bytes[written..])).await {
                Ok(Ok(n)) if n > 0 => written += n,
                _ => return Err(()),
            }
        }
        if !T::BUFFERS_WRITES {
            return Ok(());
        }
        // A buffering stream (TLS) sends what it holds.
        match timeout(write_timeout, self.stream.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}

/// What the connection needs of a request head to read its body, once the head itself has
/// gone to routing.
struct BodyHead {
    framing: Framing,
    expect_continue: bool,
}

/// How fast a body arrives: when it started and how much of it had arrived since.
#[derive(Clone, Copy, Debug)]
struct BodyRate {
    started: Instant,
    /// Body bytes already buffered when the body started to be awaited (not counted).
    initial: usize,
    received: usize,
}

impl BodyRate {
    fn start(already_buffered: usize) -> BodyRate {
        BodyRate {
            started: Instant::now(),
            initial: already_buffered,
            received: already_buffered,
        }
    }

    fn with_received(self, received: usize) -> BodyRate {
        BodyRate { received, ..self }
    }

    /// When the average rate will fall below `min_rate` if nothing more arrives: the bytes
    /// received so far "buy" `received / min_rate` seconds, and the grace period is free.
    fn deadline(&self, min_rate: u64, grace: Duration) -> Option<Instant> {
        if min_rate == 0 {
            return None;
        }
        let arrived = self.received.saturating_sub(self.initial) as u64;
        let earned =
            Duration::try_from_secs_f64(arrived as f64 / min_rate as f64).unwrap_or(Duration::MAX);
        // Past what an `Instant` can hold, the rate never runs out.
        self.started.checked_add(grace.max(earned))
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
