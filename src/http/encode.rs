//! The response encoder: status line, headers and framing, written straight into the
//! connection's output buffer.
//!
//! The encoder trusts its input: every caller-supplied name and value has been checked with
//! [`crate::http::token`] before it gets here (see `response.rs`). What the encoder owns is the
//! framing: it alone writes `Content-Length`, `Date`, `Connection` and the default
//! `Server` and `Content-Type`, so a response can never carry two conflicting lengths.

use crate::http::date::with_http_date;
use crate::http::status::{forbids_body, status_line};

/// How the connection continues after this response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: persistent, nothing to say (RFC 9112 §9.3).
    KeepAlive,
    /// An HTTP/1.0 client asked for keep-alive: it must be told it got it.
    KeepAliveHttp10,
    /// The connection closes after this response: `Connection: close` (RFC 9112 §9.6).
    Close,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length`: the size is known before the first byte.
    Length(u64),
    /// `Transfer-Encoding: chunked`, for a body streamed as it is made to an HTTP/1.1
    /// client (§7.1).
    Chunked,
    /// Neither: the body ends when the connection closes (§6.3 rule 8), the only way to
    /// stream to an HTTP/1.0 client, which does not know chunked (§7.1: "A server MUST NOT
    /// send a response containing Transfer-Encoding unless the corresponding request
    /// indicates HTTP/1.1 (or later)"). The persistence must then be `Close`.
    UntilClose,
}

/// What the server adds to every response unless the handler set its own.
#[derive(Clone, Copy, Debug)]
pub struct ServerHeaders<'a> {
    /// The `Server` value; empty sends no `Server` header.
    pub server: &'a [u8],
    /// Pre-rendered header lines (each ending in CRLF), e.g. the CORS headers of this request.
    pub extra_lines: &'a [u8],
    pub persistence: Persistence,
}

/// Writes one response head. Create it with [`HeadEncoder::new`], add the handler's headers
/// with [`HeadEncoder::header`], then [`HeadEncoder::finish`].
pub struct HeadEncoder<'a> {
    out: &'a mut Vec<u8>,
    status: u16,
    has_content_type: bool,
    has_date: bool,
    has_server: bool,
}

impl<'a> HeadEncoder<'a> {
    pub fn new(out: &'a mut Vec<u8>, status: u16) -> Self {
        out.extend_from_slice(status_line(status));
        HeadEncoder {
            out,
            status,
            has_content_type: false,
            has_date: false,
            has_server: false,
        }
    }

    /// Adds a validated header line. A handler's `Content-Type`, `Date` or `Server` replaces
    /// the server's own.
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-type") {
            if forbids_body(self.status) {
                return;
            }
            self.has_content_type = true;
        } else if name.eq_ignore_ascii_case(b"date") {
            self.has_date = true;
        } else if name.eq_ignore_ascii_case(b"server") {
            self.has_server = true;
        }
        self.line(name, value);
    }

    fn line(&mut self, name: &[u8], value: &[u8]) {
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Completes the head: the server's defaults, the framing, and the blank line.
    /// `content_type` is the default type, used when the handler set none.
    pub fn finish(self, defaults: &ServerHeaders<'_>, content_type: &[u8], content_length: u64) {
        self.finish_framed(defaults, content_type, BodyFraming::Length(content_length));
    }

    /// [`HeadEncoder::finish`] for any framing, a streamed body's included.
    pub fn finish_framed(
        mut self,
        defaults: &ServerHeaders<'_>,
        content_type: &[u8],
        framing: BodyFraming,
    ) {
        if !self.has_server && !defaults.server.is_empty() {
            self.line(b"Server", defaults.server);
        }
        if !self.has_date {
            let out = &mut *self.out;
            with_http_date(|date| {
                out.extend_from_slice(b"Date: ");
                out.extend_from_slice(date);
                out.extend_from_slice(b"\r\n");
            });
        }
        let body_allowed = !forbids_body(self.status);
        if body_allowed && !self.has_content_type && !content_type.is_empty() {
            self.line(b"Content-Type", content_type);
        }
        self.out.extend_from_slice(defaults.extra_lines);
        if body_allowed {
            match framing {
                BodyFraming::Length(length) => {
                    let mut digits = itoa::Buffer::new();
                    self.line(b"Content-Length", digits.format(length).as_bytes());
                }
                BodyFraming::Chunked => self.line(b"Transfer-Encoding", b"chunked"),
                BodyFraming::UntilClose => {}
            }
        }
        match defaults.persistence {
            Persistence::KeepAlive => {}
            Persistence::KeepAliveHttp10 => self.line(b"Connection", b"keep-alive"),
            Persistence::Close => self.line(b"Connection", b"close"),
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Encodes a whole response whose headers are all the server's own (error pages, 404, 405,
/// CORS preflights). `extra_headers` are validated `(name, value)` pairs; with `head_only`
/// the body is left out but its length still announced (RFC 9110 §9.3.2).
pub fn encode_simple(
    out: &mut Vec<u8>,
    status: u16,
    defaults: &ServerHeaders<'_>,
    extra_headers: &[(&[u8], &[u8])],
    content_type: &[u8],
    body: &[u8],
    head_only: bool,
) {
    let mut head = HeadEncoder::new(out, status);
    for (name, value) in extra_headers {
        head.header(name, value);
    }
    head.finish(defaults, content_type, body.len() as u64);
    if !head_only && !forbids_body(status) {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(persistence: Persistence) -> ServerHeaders<'static> {
        ServerHeaders {
            server: b"GodotTPD",
            extra_lines: b"",
            persistence,
        }
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn small_response() {
        let mut out = Vec::new();
        let defaults = defaults(Persistence::KeepAlive);
        encode_simple(
            &mut out,
            200,
            &defaults,
            &[],
            b"text/plain",
            b"hello",
            false,
        );
        let text = text(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nServer: GodotTPD\r\nDate: "));
        assert!(text.ends_with("Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"));
        assert!(!text.contains("Connection"));
    }

    #[test]
    fn handler_headers_replace_defaults() {
        let mut out = Vec::new();
        let mut head = HeadEncoder::new(&mut out, 201);
        head.header(b"Content-Type", b"image/png");
        head.header(b"Server", b"mine");
        head.header(b"X-A", b"1");
        head.finish(&defaults(Persistence::Close), b"text/html", 0);
        let text = text(&out);
        assert_eq!(text.matches("Content-Type").count(), 1);
        assert_eq!(text.matches("Server").count(), 1);
        assert!(text.contains("Server: mine\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn no_length_or_body_on_204_304_and_1xx() {
        for status in [100, 204, 304] {
            let mut out = Vec::new();
            let defaults = defaults(Persistence::KeepAlive);
            encode_simple(
                &mut out,
                status,
                &defaults,
                &[],
                b"text/plain",
                b"body",
                false,
            );
            let text = text(&out);
            assert!(!text.contains("Content-Length"), "{text}");
            assert!(!text.contains("Content-Type"), "{text}");
            assert!(text.ends_with("\r\n\r\n"), "{text}");
        }
    }

    #[test]
    fn head_keeps_length_but_drops_body() {
        let mut out = Vec::new();
        let defaults = defaults(Persistence::KeepAliveHttp10);
        encode_simple(&mut out, 200, &defaults, &[], b"text/plain", b"hello", true);
        let text = text(&out);
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.contains("Connection: keep-alive\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn streamed_heads() {
        let mut out = Vec::new();
        let head = HeadEncoder::new(&mut out, 200);
        head.finish_framed(
            &defaults(Persistence::KeepAlive),
            b"text/event-stream",
            BodyFraming::Chunked,
        );
        let chunked = text(&out);
        assert!(chunked.contains("Transfer-Encoding: chunked\r\n"));
        assert!(!chunked.contains("Content-Length"));
        let mut out = Vec::new();
        let head = HeadEncoder::new(&mut out, 200);
        head.finish_framed(
            &defaults(Persistence::Close),
            b"a/b",
            BodyFraming::UntilClose,
        );
        let until_close = text(&out);
        assert!(!until_close.contains("Transfer-Encoding"));
        assert!(!until_close.contains("Content-Length"));
        assert!(until_close.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn empty_server_identifier_sends_no_server_header() {
        let mut out = Vec::new();
        let defaults = ServerHeaders {
            server: b"",
            extra_lines: b"X-Extra: 1\r\n",
            persistence: Persistence::KeepAlive,
        };
        encode_simple(
            &mut out,
            404,
            &defaults,
            &[],
            b"text/plain",
            b"Not found",
            false,
        );
        let text = text(&out);
        assert!(!text.contains("Server"));
        assert!(text.contains("X-Extra: 1\r\n"));
    }
}
