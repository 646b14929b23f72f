//! Request parsing and framing, fed the way a connection reads: in pieces.
//!
//! Input layout (so that seeds are plain HTTP with a two-byte prefix):
//!
//! ```text
//! byte 0          limits profile (low 2 bits, see `limits_for`)
//! byte 1          k = number of piece lengths that follow (mod 32)
//! bytes 2..2+k    piece lengths (0..=255; 0 is a read that brought nothing new)
//! rest            the byte stream the client sends
//! ```
//!
//! The stream is cut into the listed pieces (whatever is left is one last piece) and driven
//! through `parse_head`, the body framing and `ChunkedDecoder` exactly as `conn.rs` does it.
//! The same stream is also driven in one piece and, when short, one byte at a time. All
//! runs must agree on every request (method, target, headers, framing, body) and on the
//! final error status, and every parsed head must satisfy the invariants in `check_head`.

#![no_main]

use bytes::BytesMut;
use godottpd::chunked::ChunkedDecoder;
use godottpd::limits::Limits;
use godottpd::parse::{parse_head, Framing, RequestHead};
use godottpd::token::{is_field_value, is_token};
use libfuzzer_sys::fuzz_target;

/// Longest stream also driven one byte at a time (quadratic, so kept short).
const BYTEWISE_MAX: usize = 512;

fn limits_for(profile: u8) -> Limits {
    let (line, head, headers, body) = match profile & 3 {
        0 => return Limits::default(),
        1 => (64, 256, 8, 1024),
        2 => (24, 64, 2, 16),
        _ => (8, 24, 0, 1),
    };
    Limits {
        max_request_line: line,
        max_head_size: head,
        max_headers: headers,
        max_body_size: body,
        ..Limits::default()
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    http10: bool,
    asterisk: bool,
    path: Vec<u8>,
    query: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    body: Vec<u8>,
}

/// Where a run stopped when the input ran out.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Waiting for (more of) a head; the bytes buffered for it.
    Head(Vec<u8>),
    /// Waiting for more of a Content-Length body.
    Length { wanted: u64, buffered: usize },
    /// Waiting for more of a chunked body; the body decoded so far.
    Chunked(Vec<u8>),
    /// Refused with this status; nothing after it was parsed.
    Error(u16),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Request>,
    end: End,
}

enum State {
    Head,
    Length { head: RequestHead, length: usize },
    Chunked { head: RequestHead, decoder: ChunkedDecoder, body: Vec<u8> },
    Failed(u16),
}

struct Driver<'l> {
    limits: &'l Limits,
    input: BytesMut,
    state: State,
    requests: Vec<Request>,
}

impl<'l> Driver<'l> {
    fn new(limits: &'l Limits) -> Self {
        Driver { limits, input: BytesMut::new(), state: State::Head, requests: Vec::new() }
    }

    /// One read: append the piece, then do everything the buffered bytes allow.
    fn feed(&mut self, piece: &[u8]) {
        if let State::Failed(_) = self.state {
            // After a refusal the connection closes: nothing more may be parsed.
            return;
        }
        self.input.extend_from_slice(piece);
        loop {
            match std::mem::replace(&mut self.state, State::Head) {
                State::Failed(status) => {
                    self.state = State::Failed(status);
                    return;
                }
                State::Head => match parse_head(&mut self.input, self.limits) {
                    Ok(None) => return,
                    Ok(Some(head)) => {
                        check_head(&head, self.limits);
                        self.state = match head.framing {
                            Framing::Empty => {
                                self.complete(&head, Vec::new());
                                State::Head
                            }
                            Framing::Length(length) => {
                                assert!(length > 0, "Content-Length: 0 must frame as Empty");
                                if length > self.limits.max_body_size {
                                    // conn.rs refuses before reading the body.
                                    State::Failed(413)
                                } else {
                                    State::Length { head, length: length as usize }
                                }
                            }
                            Framing::Chunked => {
                                State::Chunked { head, decoder: ChunkedDecoder::default(), body: Vec::new() }
                            }
                        };
                    }
                    Err(error) => {
                        assert!(error.status >= 400 && error.status <= 599, "error status {}", error.status);
                        self.state = State::Failed(error.status);
                    }
                },
                State::Length { head, length } => {
                    if self.input.len() < length {
                        self.state = State::Length { head, length };
                        return;
                    }
                    let body = self.input.split_to(length).to_vec();
                    assert_eq!(body.len() as u64, length as u64);
                    self.complete(&head, body);
                }
                State::Chunked { head, mut decoder, mut body } => {
                    let before = self.input.len();
                    let result = decoder.decode(&mut self.input, &mut body, self.limits.max_body_size);
                    assert!(self.input.len() <= before, "the decoder grew its input");
                    assert!(body.len() as u64 <= self.limits.max_body_size, "chunked body over max_body");
                    match result {
                        Ok(true) => {
                            assert!(decoder.is_done());
                            self.complete(&head, body);
                        }
                        Ok(false) => {
                            assert!(self.input.is_empty(), "an unfinished decoder left input unread");
                            self.state = State::Chunked { head, decoder, body };
                            return;
                        }
                        Err(error) => {
                            assert!(error.status >= 400 && error.status <= 599);
                            self.state = State::Failed(error.status);
                        }
                    }
                }
            }
        }
    }

    fn complete(&mut self, head: &RequestHead, body: Vec<u8>) {
        match head.framing {
            Framing::Empty => assert!(body.is_empty()),
            Framing::Length(n) => assert_eq!(body.len() as u64, n, "Content-Length body of the wrong size"),
            Framing::Chunked => assert!(body.len() as u64 <= self.limits.max_body_size),
        }
        self.requests.push(Request {
            method: head.method.as_str().to_owned(),
            http10: head.http10,
            asterisk: head.asterisk,
            path: head.raw_path().to_vec(),
            query: head.query.clone().map(|q| head.bytes[q].to_vec()),
            headers: head
                .headers
                .iter()
                .map(|h| (head.header_name(h).to_vec(), head.header_value(h).to_vec()))
                .collect(),
            framing: head.framing,
            keep_alive: head.keep_alive,
            expect_continue: head.expect_continue,
            body,
        });
    }

    fn finish(self) -> Outcome {
        let end = match self.state {
            State::Head => End::Head(self.input.to_vec()),
            State::Length { length, .. } => End::Length { wanted: length as u64, buffered: self.input.len() },
            State::Chunked { body, .. } => End::Chunked(body),
            State::Failed(status) => End::Error(status),
        };
        Outcome { requests: self.requests, end }
    }
}

/// What every accepted head must satisfy, whatever the bytes were.
fn check_head(head: &RequestHead, limits: &Limits) {
    let bytes = &head.bytes[..];
    assert!(bytes.len() <= limits.max_head_size, "head of {} bytes over max_head_size", bytes.len());
    assert!(bytes.ends_with(b"\n"), "head does not end with its blank line");
    assert!(head.headers.len() <= limits.max_headers, "more headers than max_headers");
    assert!(is_token(head.method.as_str().as_bytes()), "method is not a token");
    for header in &head.headers {
        let (name, value) = (header.name.clone(), header.value.clone());
        assert!(name.start <= name.end && name.end as usize <= bytes.len(), "name span outside the head");
        assert!(value.start <= value.end && value.end as usize <= bytes.len(), "value span outside the head");
        let name = head.header_name(header);
        let value = head.header_value(header);
        assert!(is_token(name), "header name {:?} is not a token", String::from_utf8_lossy(name));
        assert!(
            !value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "CR, LF or NUL in a header value: {:?}",
            String::from_utf8_lossy(value)
        );
        assert!(is_field_value(value), "control byte in a header value: {:?}", String::from_utf8_lossy(value));
        assert!(
            !value.starts_with(b" ") && !value.starts_with(b"\t") && !value.ends_with(b" ") && !value.ends_with(b"\t"),
            "header value not trimmed"
        );
    }
    assert!(head.path.end <= bytes.len() && head.path.start <= head.path.end);
    let path = head.raw_path();
    assert!(path.starts_with(b"/"), "path {:?} does not start with /", String::from_utf8_lossy(path));
    assert!(path.iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'#' && b != b'?'), "bad byte in path");
    if let Some(query) = head.query.clone() {
        assert!(query.start <= query.end && query.end <= bytes.len());
        assert!(bytes[query].iter().all(|&b| (0x21..0x7f).contains(&b) && b != b'#'), "bad byte in query");
    }
    if head.asterisk {
        assert_eq!(head.method.as_str(), "OPTIONS");
    }
    // Framing follows from the headers (RFC 9112 §6.3).
    let count = |name: &str| head.header_values(name).count();
    match head.framing {
        Framing::Chunked => {
            assert!(!head.http10 && count("content-length") == 0 && count("transfer-encoding") > 0);
        }
        Framing::Length(n) => {
            assert!(count("transfer-encoding") == 0 && count("content-length") == 1);
            let value = head.first_header("content-length").unwrap();
            assert_eq!(std::str::from_utf8(value).unwrap().parse::<u64>().unwrap(), n);
        }
        Framing::Empty => {
            assert!(count("transfer-encoding") == 0 && count("content-length") <= 1);
        }
    }
    if !head.http10 {
        assert_eq!(count("host"), 1, "HTTP/1.1 request without exactly one Host");
    }
    assert!(count("host") <= 1);
}

fn drive(limits: &Limits, pieces: impl Iterator<Item = impl AsRef<[u8]>>) -> Outcome {
    let mut driver = Driver::new(limits);
    for piece in pieces {
        driver.feed(piece.as_ref());
    }
    driver.finish()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = limits_for(data[0]);
    let cuts = usize::from(data[1] % 32).min(data.len() - 2);
    let lengths = &data[2..2 + cuts];
    let stream = &data[2 + cuts..];

    let whole = drive(&limits, std::iter::once(stream));

    let mut pieces = Vec::with_capacity(cuts + 1);
    let mut at = 0;
    for &length in lengths {
        let end = (at + usize::from(length)).min(stream.len());
        pieces.push(&stream[at..end]);
        at = end;
    }
    pieces.push(&stream[at..]);
    let split = drive(&limits, pieces.into_iter());
    assert_eq!(whole, split, "the outcome depends on how the input was split: {lengths:?}");

    if stream.len() <= BYTEWISE_MAX {
        let bytewise = drive(&limits, stream.chunks(1));
        assert_eq!(whole, bytewise, "the outcome differs when fed one byte at a time");
    }
});
