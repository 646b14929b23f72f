//! The connection's protocol loop, tested without a socket: the client is a script on the
//! other end of an in-memory pipe (`tokio::io::duplex`), handlers are plain Rust (a
//! [`ScriptedApp`] that holds each job until the test answers it), and time is paused, so
//! every timeout is exact and no test waits for real.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::app::config::{BodyPolicy, HandlerRoute, LiveConfig, Target};
use crate::app::exchange::StopSignal;
use crate::app::files::{FileRoute, FileSettings};
use crate::app::routes::Pattern;
use crate::app::upload::Read;
use crate::http::limits::Limits;
use crate::http::method::KnownMethod;

impl Transport for DuplexStream {}

/// A route that handles GET and POST.
struct EchoRoute {
    allow: Arc<str>,
    policy: BodyPolicy,
}

impl HandlerRoute for EchoRoute {
    fn handles(&self, method: KnownMethod) -> bool {
        matches!(method, KnownMethod::Get | KnownMethod::Post)
    }

    fn allow(&self) -> &Arc<str> {
        &self.allow
    }

    fn body_policy(&self) -> BodyPolicy {
        self.policy
    }
}

/// Hands every job to the test through a channel; the test answers when it likes.
struct ScriptedApp {
    jobs: mpsc::UnboundedSender<Job<EchoRoute>>,
}

impl Application for ScriptedApp {
    type Route = EchoRoute;

    fn submit(&self, job: Job<EchoRoute>) -> bool {
        self.jobs.send(job).is_ok()
    }
}

/// Answers `job` with `200` and `body` (the request's own body when `None`).
fn answer(job: Job<EchoRoute>, body: Option<&[u8]>) {
    let context = &job.context;
    let whole = context.request.body.whole().map(|body| body.to_vec());
    let body = body.map_or_else(|| whole.unwrap_or_default(), <[u8]>::to_vec);
    let server = ServerAnswer {
        server_identifier: "T",
        persistence: context.persistence,
        extra_lines: b"",
        head_only: context.head_only,
    };
    let _ = job.reply.send(server.text(200, &[], &body));
}

struct Harness {
    client: DuplexStream,
    jobs: mpsc::UnboundedReceiver<Job<EchoRoute>>,
    stop: StopSignal,
    served: tokio::task::JoinHandle<()>,
    /// Bytes read from the connection and not yet taken as a response.
    received: Vec<u8>,
    /// The size of the connection's future: what its task holds, busy or idle.
    task_size: usize,
}

fn limits() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

/// A connection served over a pipe of `pipe` bytes, with `/echo` (handlers) and, when
/// given, `/files/` (a file router on `folder`).
fn start(limits: Limits, pipe: usize, folder: Option<&std::path::Path>) -> Harness {
    start_on(limits, pipe, folder, |server| server)
}

/// As [`start`], with the server's end of the pipe wrapped by `transport`.
fn start_on<T: Transport>(
    limits: Limits,
    pipe: usize,
    folder: Option<&std::path::Path>,
    transport: impl FnOnce(DuplexStream) -> T,
) -> Harness {
    let (client, server) = tokio::io::duplex(pipe);
    let server = transport(server);
    let (jobs_in, jobs) = mpsc::unbounded_channel();
    let config = LiveConfig::new("T");
    let route = Arc::new(EchoRoute {
        allow: "GET, HEAD, POST".into(),
        policy: BodyPolicy::default(),
    });
    let echo = Pattern::compile("/echo", false).expect("a valid pattern");
    config
        .routes
        .rcu(|table| table.with_route(echo.clone(), Target::Handler(route.clone())));
    // `/upload` streams its bodies, up to 1 MiB.
    let upload = Arc::new(EchoRoute {
        allow: "GET, HEAD, POST".into(),
        policy: BodyPolicy {
            streamed: true,
            max_body_size: Some(Some(1 << 20)),
        },
    });
    let pattern = Pattern::compile("/upload", false).expect("a valid pattern");
    config
        .routes
        .rcu(|table| table.with_route(pattern.clone(), Target::Handler(upload.clone())));
    if let Some(folder) = folder {
        let root = std::fs::canonicalize(folder).expect("the folder exists");
        let files = Arc::new(
            FileRoute::new(
                root,
                &FileSettings {
                    index_page: "index.html".into(),
                    ..FileSettings::default()
                },
            )
            .expect("valid settings"),
        );
        let prefix = Pattern::compile("/files", true).expect("a valid pattern");
        config
            .routes
            .rcu(|table| table.with_route(prefix.clone(), Target::Files(files.clone())));
    }
    let stop = StopSignal::new();
    let engine = Arc::new(Engine::new(
        limits,
        Arc::new(config),
        ScriptedApp { jobs: jobs_in },
        stop.clone(),
        None,
    ));
    let peer = "127.0.0.1:1234".parse().expect("an address");
    let future = serve(server, peer, Scheme::Http, engine);
    let task_size = std::mem::size_of_val(&future);
    let served = tokio::spawn(future);
    Harness {
        client,
        jobs,
        stop,
        served,
        task_size,
        received: Vec::new(),
    }
}

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Harness {
    async fn send(&mut self, bytes: &[u8]) {
        self.client
            .write_all(bytes)
            .await
            .expect("the server reads");
    }

    async fn job(&mut self) -> Job<EchoRoute> {
        self.jobs.recv().await.expect("a job")
    }

    /// Reads until `wanted` more bytes than already received are here, or EOF.
    async fn read_more(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.client.read(&mut chunk).await.unwrap_or(0);
        self.received.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next whole response (`Content-Length` framed).
    async fn response(&mut self) -> Response {
        loop {
            if let Some(end) = find(&self.received, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.received[..end]).into_owned();
                let length = content_length(&head);
                if self.received.len() >= end + 4 + length {
                    let body = self.received[end + 4..end + 4 + length].to_vec();
                    self.received.drain(..end + 4 + length);
                    let status = head[9..12].parse().expect("a status code");
                    return Response { status, head, body };
                }
            }
            assert!(
                self.read_more().await > 0,
                "EOF before a whole response: {:?}",
                self.received
            );
        }
    }

    /// Whether the server has closed its side (EOF, nothing else pending).
    async fn closed(&mut self) -> bool {
        self.read_more().await == 0 && self.received.is_empty()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Most bytes a connection's task may take (see the test below): 3,464 when written, 8,848
/// before, with an 8 KiB array in `linger`.
const TASK_SIZE_LIMIT: usize = 4096;

#[tokio::test(flavor = "current_thread")]
async fn a_connection_task_holds_no_buffer_of_its_own() {
    // Every open connection's task is this big whatever it is doing (an idle event stream
    // too): a buffer inside it (an array in an async fn) would cost that much per
    // connection, 10,000 times over. Buffers belong on the heap, allocated when used.
    let harness = start(limits(), 1024, None);
    eprintln!("connection task: {} bytes", harness.task_size);
    assert!(
        harness.task_size <= TASK_SIZE_LIMIT,
        "{} bytes",
        harness.task_size
    );
}

#[tokio::test(start_paused = true)]
async fn pipelined_answers_go_out_in_request_order() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(
        b"GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthird",
    )
    .await;
    let first = h.job().await;
    let third = h.job().await;
    // The last handler finishes first; its answer still waits for the first one's.
    answer(third, None);
    answer(first, Some(b"first"));
    let responses = [h.response().await, h.response().await, h.response().await];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404, 200]);
    assert_eq!(responses[0].body, b"first");
    assert_eq!(responses[1].body, b"Not found");
    assert_eq!(responses[2].body, b"third");
}

/// The server's end of a pipe, counting the writes that took bytes.
struct CountingWrites {
    inner: DuplexStream,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingWrites {
    fn count(&self, written: &std::io::Result<usize>) {
        if matches!(written, Ok(n) if *n > 0) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl tokio::io::AsyncRead for CountingWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(written) = &polled {
            self.count(written);
        }
        polled
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Transport for CountingWrites {
    const BUFFERS_WRITES: bool = false;
}

#[tokio::test(start_paused = true)]
async fn pipelined_answers_ready_together_go_out_in_one_write() {
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = writes.clone();
    let mut h = start_on(limits(), 64 * 1024, None, move |inner| CountingWrites {
        inner,
        writes: counter,
    });
    h.send(
        b"GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /echo?2 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /echo?3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let jobs = [h.job().await, h.job().await, h.job().await];
    // Answered in one go, as a loop thread's round answers them (see `reply_batch`).
    for (job, body) in jobs.into_iter().zip([&b"one"[..], b"two", b"three"]) {
        answer(job, Some(body));
    }
    let bodies = [
        h.response().await.body,
        h.response().await.body,
        h.response().await.body,
    ];
    assert_eq!(bodies, [&b"one"[..], b"two", b"three"]);
    assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn expect_continue_is_answered_before_the_body_is_read() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    while find(&h.received, b"\r\n\r\n").is_none() {
        assert!(h.read_more().await > 0);
    }
    assert_eq!(h.received, b"HTTP/1.1 100 Continue\r\n\r\n");
    h.received.clear();
    h.send(b"body").await;
    let job = h.job().await;
    answer(job, None);
    let response = h.response().await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"body"[..])
    );
}

#[tokio::test(start_paused = true)]
async fn a_buffered_body_gets_no_100_continue() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let job = h.job().await;
    answer(job, None);
    let response = h.response().await;
    assert_eq!(response.status, 200, "{}", response.head);
}

#[tokio::test(start_paused = true)]
async fn a_head_that_does_not_arrive_in_time_gets_408_at_header_timeout() {
    let mut h = start(limits(), 64 * 1024, None);
    let started = Instant::now();
    h.send(b"GET /echo HTTP/1.1\r\nHo").await;
    let response = h.response().await;
    assert_eq!(response.status, 408);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert!(response.head.contains("Connection: close"));
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_closes_at_keepalive_timeout() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let job = h.job().await;
    answer(job, Some(b"x"));
    assert_eq!(h.response().await.status, 200);
    let idle_from = Instant::now();
    assert!(h.closed().await);
    assert_eq!(idle_from.elapsed(), Duration::from_secs(5));
    h.served.await.expect("the connection task ends");
}

#[tokio::test(start_paused = true)]
async fn a_fresh_connection_that_sends_nothing_closes_at_header_timeout() {
    let mut h = start(limits(), 64 * 1024, None);
    let started = Instant::now();
    assert!(h.closed().await, "closed without an answer");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_gets_408_at_body_timeout() {
    // Without a minimum rate, only the stall counts.
    let no_min_rate = Limits {
        min_body_rate: 0,
        ..limits()
    };
    let mut h = start(no_min_rate, 64 * 1024, None);
    h.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await;
    let started = Instant::now();
    let response = h.response().await;
    assert_eq!(response.status, 408);
    assert!(String::from_utf8_lossy(&response.body).contains("stalled"));
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_is_cut_first_by_the_minimum_rate() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await;
    let started = Instant::now();
    let response = h.response().await;
    assert_eq!(response.status, 408);
    assert!(String::from_utf8_lossy(&response.body).contains("too slowly"));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_dribbled_body_is_cut_by_min_body_rate() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .await;
    let started = Instant::now();
    let mut sent = 0;
    // One byte a second never stalls for body_timeout, but falls far below 1 KiB/s.
    let cut = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if h.client.write_all(b"x").await.is_err() {
            break started.elapsed();
        }
        sent += 1;
        let mut probe = [0u8; 1];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), h.client.read(&mut probe)).await
        {
            h.received.extend_from_slice(&probe[..n]);
            break started.elapsed();
        }
        assert!(sent < 60, "a 1 B/s body was never cut");
    };
    let response = h.response().await;
    assert_eq!(response.status, 408);
    assert!(String::from_utf8_lossy(&response.body).contains("too slowly"));
    // The grace period is 5 s; the cut comes at its end, well within 10 s.
    assert!(
        cut >= Duration::from_secs(5) && cut <= Duration::from_secs(7),
        "{cut:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_large_body_is_not_cut() {
    let mut h = start(limits(), 64 * 1024, None);
    let body = vec![b'y'; 200 * 1024];
    let mut request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 204800\r\n\r\n".to_vec();
    request.extend_from_slice(&body);
    let (reader, mut writer) = tokio::io::split(h.client);
    let sender = tokio::spawn(async move {
        // 200 KiB at 16 KiB a second: slow, yet far above 1 KiB/s.
        for chunk in request.chunks(16 * 1024) {
            writer.write_all(chunk).await.expect("the server reads");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        writer
    });
    let job = h.jobs.recv().await.expect("a job");
    assert_eq!(
        job.context.request.body.whole().map(Bytes::len),
        Some(body.len())
    );
    answer(job, Some(b"ok"));
    let writer = sender.await.expect("the sender ends");
    h.client = reader.unsplit(writer);
    assert_eq!(h.response().await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_lingers_reading_before_it_closes() {
    let mut h = start(limits(), 64 * 1024, None);
    // A body too large is refused before it is read; the client goes on sending it.
    h.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        .await;
    let response = h.response().await;
    assert_eq!(response.status, 413);
    let after_answer = Instant::now();
    // The server still drains what the client sends, so the client sees no reset ...
    for _ in 0..10 {
        h.send(&[b'z'; 1000]).await;
    }
    assert!(after_answer.elapsed() < Duration::from_secs(2));
    // ... until the linger time is over; then it drops the stream.
    h.served.await.expect("the connection task ends");
    assert_eq!(after_answer.elapsed(), Duration::from_secs(2));
    assert!(h.client.write_all(b"more").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_dropped_at_write_timeout() {
    // A pipe of 1 KiB: the answer cannot all be written while nobody reads.
    let mut h = start(limits(), 1024, None);
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let job = h.job().await;
    let started = Instant::now();
    answer(job, Some(&vec![b'b'; 512 * 1024]));
    h.served.await.expect("the connection task ends");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn stopping_lets_a_busy_request_finish_and_closes_after_it() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let job = h.job().await;
    h.stop.cancel();
    // The handler was already working: its answer still goes out, then the connection ends.
    let connection = job.context.connection.clone();
    assert!(connection.server_stopping());
    answer(job, Some(b"late"));
    let response = h.response().await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"late"[..])
    );
    assert!(h.closed().await);
}

#[tokio::test(start_paused = true)]
async fn stopping_closes_an_idle_connection_at_once() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    answer(h.job().await, Some(b"x"));
    assert_eq!(h.response().await.status, 200);
    let started = Instant::now();
    h.stop.cancel();
    assert!(h.closed().await);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_while_its_handler_works_frees_the_connection() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let job = h.job().await;
    let connection = job.context.connection.clone();
    drop(h.client);
    // The task ends without waiting for the handler, which may never answer.
    h.served.await.expect("the connection task ends");
    assert!(!connection.is_open());
    answer(job, Some(b"nobody reads this"));
}

#[tokio::test(start_paused = true)]
async fn a_file_goes_through_a_stream_without_sendfile_whole_and_in_order() {
    let folder = std::env::temp_dir().join(format!("godottpd-conn-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("a temporary folder");
    let content: Vec<u8> = (0..(3 * 64 * 1024 + 7)).map(|i| (i % 251) as u8).collect();
    std::fs::File::create(folder.join("big.bin"))
        .and_then(|mut file| file.write_all(&content))
        .expect("the file is written");
    let mut h = start(limits(), 8 * 1024, Some(&folder));
    h.send(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /files/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n")
        .await;
    let whole = h.response().await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, content);
    let part = h.response().await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &content[10..20]);
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_request_after_good_ones_is_answered_after_them() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        .await;
    answer(h.job().await, Some(b"ok"));
    assert_eq!(h.response().await.status, 200);
    let refused = h.response().await;
    assert_eq!(refused.status, 400);
    assert!(refused.head.contains("Connection: close"));
    assert!(h.closed().await);
}

/// The queue a streamed job's body arrives in.
fn body_queue(job: &Job<EchoRoute>) -> Arc<BodyQueue> {
    match &job.context.request.body {
        RequestBody::Streamed(queue) => queue.clone(),
        RequestBody::Whole(_) => panic!("the body was read whole"),
    }
}

/// Reads a streamed body to its end, as a handler does.
async fn read_all(queue: &BodyQueue) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    loop {
        match queue.next().await? {
            Read::Piece(piece) => body.extend_from_slice(&piece),
            Read::End | Read::Waiting => return Ok(body),
        }
    }
}

/// Whether the connection sends anything within a (paused-clock) second.
async fn quiet_for_a_second(h: &mut Harness) -> bool {
    tokio::time::timeout(Duration::from_secs(1), h.read_more())
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_goes_to_the_handler_with_100_continue_on_its_first_read() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 8\r\n\r\n",
    )
    .await;
    // The handler runs on the head alone; nothing is said to the client before it reads.
    let job = h.job().await;
    assert!(quiet_for_a_second(&mut h).await, "{:?}", h.received);
    let queue = body_queue(&job);
    let reader = tokio::spawn(async move { read_all(&queue).await });
    while find(&h.received, b"\r\n\r\n").is_none() {
        assert!(h.read_more().await > 0);
    }
    assert_eq!(h.received, b"HTTP/1.1 100 Continue\r\n\r\n");
    h.received.clear();
    h.send(b"abcd").await;
    h.send(b"efgh").await;
    let body = reader
        .await
        .expect("the reader ends")
        .expect("the whole body");
    assert_eq!(body, b"abcdefgh");
    answer(job, Some(b"saved"));
    let response = h.response().await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"saved"[..])
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_request_waits_until_the_streamed_body_is_consumed() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext",
    )
    .await;
    let upload = h.job().await;
    // The pipelined request is not read (so not routed) while the body is unconsumed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.jobs.try_recv().is_err(), "the next request ran early");
    let body = read_all(&body_queue(&upload)).await.expect("the body");
    assert_eq!(body, b"abcde");
    let next = h.job().await;
    answer(next, None);
    answer(upload, Some(b"first"));
    let first = h.response().await;
    let second = h.response().await;
    assert_eq!(first.body, b"first");
    assert_eq!(second.body, b"next");
}

#[tokio::test(start_paused = true)]
async fn a_full_body_queue_stops_reading_the_socket() {
    let small_buffer = Limits {
        stream_buffer: 4096,
        ..limits()
    };
    let pipe = 16 * 1024;
    let mut h = start(small_buffer, pipe, None);
    let length = 1usize << 20;
    h.send(
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n").as_bytes(),
    )
    .await;
    let job = h.job().await;
    let queue = body_queue(&job);
    // One read: the connection starts reading; then the handler stops reading.
    let piece = vec![b'x'; 4096];
    h.send(&piece).await;
    let first = queue.next().await.expect("a piece");
    let mut delivered = match first {
        Read::Piece(piece) => piece.len(),
        other => panic!("{other:?}"),
    };
    let mut sent = piece.len();
    while sent < length {
        match tokio::time::timeout(Duration::from_secs(1), h.client.write_all(&piece)).await {
            Ok(written) => {
                written.expect("the server reads");
                sent += piece.len();
            }
            Err(_) => break,
        }
    }
    // What the client got out is bounded by the pipe, one read buffer and the budget.
    assert!(
        sent < 128 * 1024,
        "{sent} bytes went in with nobody reading"
    );
    let writer = tokio::spawn(async move {
        let mut client = h.client;
        while sent < length {
            client.write_all(&piece).await.expect("the server reads");
            sent += piece.len();
        }
        (client, h.jobs)
    });
    delivered += read_all(&queue).await.expect("the body").len();
    assert_eq!(delivered, length);
    let _kept = writer.await.expect("the writer ends");
    drop(job);
}

#[tokio::test(start_paused = true)]
async fn a_body_its_handler_gives_up_is_discarded_and_the_connection_goes_on() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nunread\
          GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let upload = h.job().await;
    body_queue(&upload).abandon();
    answer(upload, Some(b"no"));
    let next = h.job().await;
    answer(next, Some(b"yes"));
    assert_eq!(h.response().await.body, b"no");
    assert_eq!(h.response().await.body, b"yes");
}

#[tokio::test(start_paused = true)]
async fn a_body_given_up_before_100_continue_closes_after_the_answer() {
    let mut h = start(limits(), 64 * 1024, None);
    h.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n",
    )
    .await;
    let upload = h.job().await;
    body_queue(&upload).abandon();
    answer(upload, Some(b"refused"));
    let response = h.response().await;
    assert_eq!(response.body, b"refused");
    assert!(!response.head.contains("100 Continue"));
    assert!(h.closed().await);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_streamed_body_fails_the_handler_read_with_408() {
    let no_min_rate = Limits {
        min_body_rate: 0,
        ..limits()
    };
    let mut h = start(no_min_rate, 64 * 1024, None);
    h.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await;
    let job = h.job().await;
    let started = Instant::now();
    let error = read_all(&body_queue(&job)).await.expect_err("a stall");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(matches!(error, BodyError::Refused(refusal) if refusal.status == 408));
    answer(job, Some(b"too slow"));
    assert_eq!(h.response().await.body, b"too slow");
    assert!(h.closed().await);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_past_the_route_limit_is_refused() {
    let mut h = start(limits(), 64 * 1024, None);
    // Announced too large: refused before the handler runs.
    h.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        .await;
    assert_eq!(h.response().await.status, 413);
    assert!(h.jobs.try_recv().is_err());
    // Chunked, past the limit as it arrives: the handler's read fails.
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n")
        .await;
    let job = h.job().await;
    let error = read_all(&body_queue(&job)).await.expect_err("too large");
    assert!(matches!(error, BodyError::Refused(refusal) if refusal.status == 413));
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_does_not_make_a_fast_client_look_slow() {
    let small_buffer = Limits {
        stream_buffer: 4096,
        ..limits()
    };
    let mut h = start(small_buffer, 16 * 1024, None);
    let length = 64 * 1024;
    h.send(
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n").as_bytes(),
    )
    .await;
    let job = h.job().await;
    let queue = body_queue(&job);
    let mut client = h.client;
    // The client sends 10 KiB/s, ten times min_body_rate.
    let writer = tokio::spawn(async move {
        for _ in 0..length / 1024 {
            client
                .write_all(&[b'x'; 1024])
                .await
                .expect("the server reads");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client
    });
    // The handler takes a first piece, then is busy for a minute (the client, held back,
    // waits), then reads as fast as the client sends.
    let mut received = 0;
    let mut pauses = 1;
    loop {
        match queue
            .next()
            .await
            .expect("no 408: the client is not the slow one")
        {
            Read::Piece(piece) => received += piece.len(),
            Read::End | Read::Waiting => break,
        }
        if pauses > 0 {
            pauses -= 1;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
    assert_eq!(received, length);
    let _client = writer.await.expect("the writer ends");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_arrives_with_more_while_an_earlier_answer_is_awaited() {
    let mut h = start(limits(), 64 * 1024, None);
    // The POST's body is not here yet: the connection first waits for the GET's answer,
    // reading on meanwhile; the body then arrives together with the next request.
    h.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        .await;
    let first = h.job().await;
    h.send(b"12345GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Let the connection read those bytes before the first answer comes.
    tokio::time::sleep(Duration::from_millis(10)).await;
    answer(first, Some(b"first"));
    let second = h.job().await;
    assert_eq!(
        second
            .context
            .request
            .body
            .whole()
            .map(|body| body.to_vec()),
        Some(b"12345".to_vec())
    );
    answer(second, None);
    let third = h.job().await;
    answer(third, Some(b"third"));
    let bodies = [
        h.response().await.body,
        h.response().await.body,
        h.response().await.body,
    ];
    assert_eq!(
        bodies,
        [b"first".to_vec(), b"12345".to_vec(), b"third".to_vec()]
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_that_arrives_while_a_handler_works_is_answered_without_more_input() {
    // The second request comes in while the first one's handler works (the connection reads
    // it while it waits for the answer); once the first answer is out it must be parsed and
    // dispatched from the buffer, not left there while the connection waits on a socket the
    // client has nothing more to send on.
    let mut h = start(limits(), 64 * 1024, None);
    h.send(b"GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let first = h.job().await;
    h.send(b"GET /echo?2 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    tokio::task::yield_now().await;
    answer(first, Some(b"one"));
    assert_eq!(h.response().await.body, b"one");
    let second = tokio::time::timeout(Duration::from_secs(1), h.job())
        .await
        .expect("the second request is dispatched at once");
    answer(second, Some(b"two"));
    assert_eq!(h.response().await.body, b"two");
}
