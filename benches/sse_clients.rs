//! Many `EventSource`-style clients for the SSE fan-out benchmark
//! (`benches/load/sse_fanout.py`), cheap enough not to be what is measured: one thread
//! (a current-thread tokio runtime, the caller pins it to a core), one task per connection,
//! events counted by their `\n\n` terminator with memchr, no parsing except on a sample.
//!
//! ```text
//! cargo build --release --example sse_clients
//! target/release/examples/sse_clients PORT CLIENTS [PATH] [SAMPLE_EVERY]
//! ```
//!
//! Each client sends `GET PATH` with `Accept: text/event-stream` and reads the stream. Once
//! every connection has its response head (or failed), one JSON line goes to stdout:
//! `{"connected": n, "failed": n, "first_error": "..."}`. Then commands on stdin, one a line:
//! `go` zeroes the counters, `stat` prints a snapshot, `stop` prints one and exits. A
//! snapshot: events summed over the clients, the clients still connected and those the
//! server closed or reset, the fewest and most events one client received, the time from
//! the first event after `go` to the last, and for every `SAMPLE_EVERY`-th client (100 by
//! default) whether its `id:` fields went up by one each event (gaps and reorders counted).
//!
//! The events are counted as they arrive on the wire: a chunked body's framing has no
//! `\n\n` in it (`\r\n` only), and the benchmark's servers send no comments while counting.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use memchr::memmem;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Connections being opened at once: past the listen backlogs of the servers, SYNs are
/// dropped and retried a second later, which only slows the start.
const CONNECTING_AT_ONCE: usize = 256;
/// Read buffer of one connection (10,000 of them: 80 MB).
const READ_BUFFER: usize = 8 * 1024;

#[derive(Default)]
struct Totals {
    events: Cell<u64>,
    closed: Cell<u64>,
    first_event: Cell<Option<Instant>>,
    last_event: Cell<Option<Instant>>,
    sampled: Cell<u64>,
    gaps: Cell<u64>,
    reorders: Cell<u64>,
    /// Events of each client since `go`; `None` for one that never connected.
    per_client: RefCell<Vec<Option<u64>>>,
    connected: Cell<u64>,
    failed: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

/// The `id:` check of one sampled client: the bytes after its last complete event.
struct Sample {
    carry: Vec<u8>,
    last_id: Option<u64>,
}

impl Sample {
    fn feed(&mut self, data: &[u8], totals: &Totals) {
        self.carry.extend_from_slice(data);
        let Some(end) = memmem::rfind(&self.carry, b"\n\n") else {
            return;
        };
        let complete = &self.carry[..end + 2];
        for at in memmem::find_iter(complete, b"id: ") {
            let digits = &complete[at + 4..];
            let length = digits
                .iter()
                .position(|byte| !byte.is_ascii_digit())
                .unwrap_or(digits.len());
            let Some(id) = std::str::from_utf8(&digits[..length])
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
            else {
                totals.reorders.set(totals.reorders.get() + 1);
                continue;
            };
            match self.last_id {
                Some(last) if id <= last => totals.reorders.set(totals.reorders.get() + 1),
                Some(last) if id != last + 1 => totals.gaps.set(totals.gaps.get() + 1),
                _ => {}
            }
            self.last_id = Some(id);
        }
        self.carry.drain(..end + 2);
    }
}

/// What every client task shares (one thread: no locks).
struct Shared {
    port: u16,
    path: String,
    totals: Totals,
    opening: Semaphore,
    /// Clients still waiting for their response head.
    heads: Cell<usize>,
    all_heads: tokio::sync::Notify,
}

async fn client(index: usize, sample: bool, shared: Rc<Shared>) {
    let opened = {
        let _permit = shared.opening.acquire().await;
        open(shared.port, &shared.path).await
    };
    shared.heads.set(shared.heads.get() - 1);
    if shared.heads.get() == 0 {
        shared.all_heads.notify_one();
    }
    let totals = &shared.totals;
    let (mut reader, leftover) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            totals.failed.set(totals.failed.get() + 1);
            totals.first_error.borrow_mut().get_or_insert(error);
            return;
        }
    };
    totals.connected.set(totals.connected.get() + 1);
    totals.per_client.borrow_mut()[index] = Some(0);
    let terminator = memmem::Finder::new(b"\n\n");
    let mut sample = sample.then(|| Sample {
        carry: Vec::new(),
        last_id: None,
    });
    if let Some(sample) = &mut sample {
        sample.feed(&leftover, totals);
    }
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut ended_with_newline = leftover.last() == Some(&b'\n');
    loop {
        let read = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let data = &buffer[..read];
        let mut events = terminator.find_iter(data).count() as u64;
        if ended_with_newline && data[0] == b'\n' {
            events += 1;
        }
        ended_with_newline = data[read - 1] == b'\n';
        if events > 0 {
            let now = Some(Instant::now());
            if totals.first_event.get().is_none() {
                totals.first_event.set(now);
            }
            totals.last_event.set(now);
            totals.events.set(totals.events.get() + events);
            if let Some(count) = &mut totals.per_client.borrow_mut()[index] {
                *count += events;
            }
        }
        if let Some(sample) = &mut sample {
            sample.feed(data, totals);
        }
    }
    totals.closed.set(totals.closed.get() + 1);
}

/// Connects, asks for the stream and reads the response head; returns the stream and the
/// bytes read past the head.
async fn open(port: u16, path: &str) -> Result<(BufReader<TcpStream>, Vec<u8>), String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let _ = socket.set_nodelay(true);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("write: {error}"))?;
    let mut reader = BufReader::with_capacity(1024, socket);
    let mut line = String::new();
    let mut status = None;
    loop {
        line.clear();
        let read = tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut line))
            .await
            .map_err(|_| "no response head within 60 s".to_string())?
            .map_err(|error| format!("read: {error}"))?;
        if read == 0 {
            return Err("closed before the response head".into());
        }
        if status.is_none() {
            status = Some(line.trim_end().to_string());
            if !line.starts_with("HTTP/1.1 200") && !line.starts_with("HTTP/1.0 200") {
                return Err(format!("status line {:?}", line.trim_end()));
            }
        } else if line == "\r\n" {
            break;
        }
    }
    let leftover = reader.buffer().to_vec();
    reader.consume(leftover.len());
    Ok((reader, leftover))
}

fn snapshot(totals: &Totals) -> String {
    let per_client = totals.per_client.borrow();
    let counts = per_client.iter().flatten().copied();
    let span = match (totals.first_event.get(), totals.last_event.get()) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    format!(
        "{{\"events\": {}, \"connected\": {}, \"closed\": {}, \"fewest\": {}, \"most\": {}, \
         \"span_s\": {:.6}, \"sampled\": {}, \"gaps\": {}, \"reorders\": {}}}",
        totals.events.get(),
        totals.connected.get() - totals.closed.get(),
        totals.closed.get(),
        counts.clone().min().unwrap_or(0),
        counts.max().unwrap_or(0),
        span,
        totals.sampled.get(),
        totals.gaps.get(),
        totals.reorders.get(),
    )
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let usage = "usage: sse_clients PORT CLIENTS [PATH] [SAMPLE_EVERY]";
    let (Some(port), Some(clients)) = (
        arguments.get(1).and_then(|port| port.parse::<u16>().ok()),
        arguments
            .get(2)
            .and_then(|count| count.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let path = arguments
        .get(3)
        .map_or("/events", String::as_str)
        .to_string();
    let sample_every = arguments
        .get(4)
        .and_then(|every| every.parse::<usize>().ok())
        .unwrap_or(100)
        .max(1);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("no runtime: {error}");
            std::process::exit(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let shared = Rc::new(Shared {
            port,
            path,
            totals: Totals::default(),
            opening: Semaphore::new(CONNECTING_AT_ONCE),
            heads: Cell::new(clients),
            all_heads: tokio::sync::Notify::new(),
        });
        let totals = &shared.totals;
        *totals.per_client.borrow_mut() = vec![None; clients];
        for index in 0..clients {
            let sample = index % sample_every == 0;
            if sample {
                totals.sampled.set(totals.sampled.get() + 1);
            }
            tokio::task::spawn_local(client(index, sample, shared.clone()));
        }
        if clients > 0 {
            shared.all_heads.notified().await;
        }
        let first_error = totals.first_error.borrow().clone().unwrap_or_default();
        println!(
            "{{\"connected\": {}, \"failed\": {}, \"first_error\": {:?}}}",
            totals.connected.get(),
            totals.failed.get(),
            first_error
        );
        let mut commands = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(command)) = commands.next_line().await {
            match command.trim() {
                "go" => {
                    totals.events.set(0);
                    totals.first_event.set(None);
                    totals.last_event.set(None);
                    totals.gaps.set(0);
                    totals.reorders.set(0);
                    for count in totals.per_client.borrow_mut().iter_mut().flatten() {
                        *count = 0;
                    }
                }
                "stat" => println!("{}", snapshot(totals)),
                "stop" => break,
                _ => {}
            }
        }
        println!("{}", snapshot(totals));
    });
}
