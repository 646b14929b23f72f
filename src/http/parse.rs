//! Request heads: httparse does the tokenising, this module the rules of RFC 9112 that
//! httparse leaves to its caller (Host, framing, limits, request-target forms).
//!
//! The head is kept as one immutable `Bytes` with spans into it, so a request whose handler
//! never reads its headers never pays for a string per header.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::http::error::RequestError;
use crate::http::limits::{Limits, MAX_HEADERS_CEILING};
pub use crate::http::method::Method;
use crate::http::token::{list_contains, trim_ows};

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No Content-Length and no Transfer-Encoding: a request without content.
    Empty,
    Length(u64),
    Chunked,
}

/// A header field, as spans into [`RequestHead::bytes`] (value already trimmed of OWS).
#[derive(Clone, Debug)]
pub struct HeaderSpan {
    pub name: Range<u32>,
    pub value: Range<u32>,
}

/// A parsed and validated request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: Method,
    /// `true` for HTTP/1.0, `false` for HTTP/1.1.
    pub http10: bool,
    /// The raw head, request line to the blank line.
    pub bytes: Bytes,
    /// The path part of the target (raw, still percent-encoded); empty means `/`.
    pub path: Range<usize>,
    /// The query part of the target, without its `?`.
    pub query: Option<Range<usize>>,
    /// `OPTIONS *` (RFC 9112 §3.2.4): a question about the server, not a resource.
    pub asterisk: bool,
    /// The authority of an absolute-form target (`http://host:port/...`), which replaces
    /// `Host` (RFC 9112 §3.2.2).
    pub authority: Option<Range<usize>>,
    pub headers: Vec<HeaderSpan>,
    pub framing: Framing,
    /// Whether the client allows the connection to persist after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` (RFC 9110 §10.1.1).
    pub expect_continue: bool,
}

impl RequestHead {
    pub fn raw_path(&self) -> &[u8] {
        if self.path.is_empty() {
            b"/"
        } else {
            &self.bytes[self.path.clone()]
        }
    }

    pub fn raw_query(&self) -> &[u8] {
        self.query
            .clone()
            .map_or(&[][..], |range| &self.bytes[range])
    }

    pub fn header_name(&self, header: &HeaderSpan) -> &[u8] {
        &self.bytes[header.name.start as usize..header.name.end as usize]
    }

    pub fn header_value(&self, header: &HeaderSpan) -> &[u8] {
        &self.bytes[header.value.start as usize..header.value.end as usize]
    }

    /// Every value of the header `name` (ASCII case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| self.header_name(h).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| self.header_value(h))
    }

    pub fn first_header<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }

    /// The host the request is for: an absolute-form target's authority, else `Host`,
    /// else empty (an HTTP/1.0 request without one).
    pub fn host(&self) -> &[u8] {
        match &self.authority {
            Some(range) => &self.bytes[range.clone()],
            None => self.first_header("host").unwrap_or_default(),
        }
    }
}

/// Parses one request head from the front of `buffer`, removing it on success.
///
/// `Ok(None)` means more bytes are needed. On error the connection must answer with the
/// error's status and close.
///
/// The outcome depends only on the bytes, never on how they were split across reads: a size
/// limit is judged at the byte that first exceeds it, and httparse is only shown the bytes
/// before that point. So a malformed byte before the limit always gives its own error, one
/// after it is never looked at, and the limit's status comes only from bytes within it.
pub fn parse_head(
    buffer: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<RequestHead>, RequestError> {
    let (window, over_limit) = limit_window(buffer, limits);
    let max_headers = limits.max_headers.min(MAX_HEADERS_CEILING);
    let mut storage =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let mut request = httparse::Request::new(&mut []);
    let status = request.parse_with_uninit_headers(&buffer[..window], &mut storage[..max_headers]);
    let head_len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return over_limit.map_or(Ok(None), Err),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestError::new(431, "too many header fields"));
        }
        // The version is judged on the whole request line, however it was split across reads.
        Err(httparse::Error::Version) if !has_whole_request_line(&buffer[..window]) => {
            return over_limit.map_or(Ok(None), Err);
        }
        Err(httparse::Error::Version) if higher_minor_version(&buffer[..window]).is_some() => {
            // RFC 9110 §2.5: a recipient of a higher minor version of a major version it
            // implements should process it "as if it were in the highest minor version
            // within that major version to which the recipient is conformant": HTTP/1.1.
            if let Some(digit) = higher_minor_version(&buffer[..window]) {
                buffer[digit] = b'1';
            }
            return parse_head(buffer, limits);
        }
        Err(httparse::Error::Version) if names_another_version(&buffer[..window]) => {
            return Err(RequestError::new(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ));
        }
        Err(_) => return Err(RequestError::bad_request("malformed request head")),
    };
    if has_bare_lf(&buffer[..head_len]) {
        // RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator; a front end
        // that does not would see other header lines (a Content-Length it never read), so
        // this server refuses it, as the RFC allows: the line terminator is CRLF.
        return Err(RequestError::bad_request("bare LF in the request head"));
    }
    if head_len > limits.max_head_size {
        // Unreachable with the window above; kept so that no change there can lift the limit.
        return Err(RequestError::new(431, "request header section too large"));
    }
    let base = buffer.as_ptr() as usize;
    let offset_of = |slice: &[u8]| slice.as_ptr() as usize - base;
    let method_token = request.method.unwrap_or_default();
    let method = Method::from_token(method_token);
    let http10 = request.version == Some(0);
    let target = request.path.unwrap_or_default();
    let target_start = offset_of(target.as_bytes());
    let target_len = target.len();
    let mut spans = Vec::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name_start = offset_of(header.name.as_bytes());
        let value = trim_ows(header.value);
        let value_start = if value.is_empty() {
            name_start
        } else {
            offset_of(value)
        };
        spans.push(HeaderSpan {
            name: span32(name_start, header.name.len()),
            value: span32(value_start, value.len()),
        });
    }
    // Copied out rather than split off: a split would share the connection's read buffer
    // with the request for as long as Python holds it, and the next read would then have to
    // allocate a fresh buffer. A head is small; the copy is cheaper than that allocation.
    let bytes = Bytes::copy_from_slice(&buffer[..head_len]);
    buffer.advance(head_len);
    let TargetParts {
        path,
        query,
        asterisk,
        authority,
    } = split_target(&bytes, target_start, target_len, &method)?;
    let mut head = RequestHead {
        method,
        http10,
        bytes,
        path,
        query,
        asterisk,
        authority,
        headers: spans,
        framing: Framing::Empty,
        keep_alive: !http10,
        expect_continue: false,
    };
    apply_field_rules(&mut head)?;
    apply_target_authority(&mut head)?;
    Ok(Some(head))
}

/// RFC 9112 §3.2.2: "When an origin server receives a request with an absolute-form of
/// request-target, the origin server MUST ignore the received Host header field (if any) and
/// instead use the host information of the request-target." The `Host` line the handler
/// sees is made to read the target's authority, so that no part of the program can see the
/// other one. RFC 9110 §4.2.4: userinfo in an `http` URI is invalid, and is refused.
fn apply_target_authority(head: &mut RequestHead) -> Result<(), RequestError> {
    let Some(range) = head.authority.clone() else {
        return Ok(());
    };
    let authority = &head.bytes[range.clone()];
    if authority.contains(&b'@') || !is_valid_host(authority) {
        return Err(RequestError::bad_request(
            "invalid authority in the request-target",
        ));
    }
    let value = span32(range.start, range.len());
    let RequestHead { headers, bytes, .. } = head;
    for header in headers.iter_mut() {
        let name = &bytes[header.name.start as usize..header.name.end as usize];
        if name.eq_ignore_ascii_case(b"host") {
            header.value = value.clone();
        }
    }
    Ok(())
}

/// Whether a line of `head` ends in LF without the CR before it.
///
/// httparse has already refused every CR not followed by LF, so each CR here starts a
/// CRLF, and a bare LF exists exactly when there are more LFs than CRs. Two vectorised
/// counts cost less than visiting each LF in turn (this runs on every request).
fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).count() != memchr::memchr_iter(b'\r', head).count()
}

/// Where the minor digit of a request line's `HTTP/1.x` version is, when `x` is 2 or more.
fn higher_minor_version(buffer: &[u8]) -> Option<usize> {
    if !names_another_version(buffer) {
        return None;
    }
    let start = buffer.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = start + memchr::memchr(b'\n', &buffer[start..])?;
    let line = &buffer[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.get(line.len().checked_sub(8)?..)?;
    (version[5] == b'1' && version[7] >= b'2').then_some(line.len() - 1)
}

fn span32(start: usize, len: usize) -> Range<u32> {
    // Heads are capped far below 4 GiB by `max_head_size`, so the casts cannot truncate.
    start as u32..(start + len) as u32
}

fn has_whole_request_line(buffer: &[u8]) -> bool {
    let start = buffer
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buffer.len());
    memchr::memchr(b'\n', &buffer[start..]).is_some()
}

/// Whether a request line httparse refused for its version is well formed but names another
/// HTTP version (`GET / HTTP/2.0`): that is a 505. A line whose "version" is something else,
/// such as the second half of a target with a space in it, is a plain 400.
fn names_another_version(buffer: &[u8]) -> bool {
    let start = buffer
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buffer.len());
    let rest = &buffer[start..];
    let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [_, _, version]
        if version.len() == 8
            && version.starts_with(b"HTTP/")
            && version[5].is_ascii_digit()
            && version[6] == b'.'
            && version[7].is_ascii_digit())
}

/// How much of `buffer` the head parser may look at, and the limit error to give if the head
/// is still incomplete there.
///
/// RFC 9112 §3: "A server that receives a request-target longer than any URI it wishes to
/// parse MUST respond with a 414 (URI Too Long) status code." The request line (after any
/// empty lines before it) may be `max_request_line` bytes long; the head `max_head_size`.
fn limit_window(buffer: &[u8], limits: &Limits) -> (usize, Option<RequestError>) {
    let mut window = buffer.len();
    let mut over_limit = None;
    if buffer.len() > limits.max_head_size {
        window = limits.max_head_size;
        over_limit = Some(RequestError::new(431, "request header section too large"));
    }
    let start = buffer
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buffer.len());
    let line_window = start.saturating_add(limits.max_request_line);
    // The line is too long once a byte past `line_window` exists and no LF ended it before.
    if line_window < buffer.len()
        && line_window <= window
        && memchr::memchr(b'\n', &buffer[start..=line_window]).is_none()
    {
        window = line_window;
        over_limit = Some(RequestError::new(414, "request line too long"));
    }
    (window, over_limit)
}

/// The spans of a request-target, into the head's bytes.
struct TargetParts {
    path: Range<usize>,
    query: Option<Range<usize>>,
    /// `OPTIONS *`.
    asterisk: bool,
    /// The authority of an absolute-form target.
    authority: Option<Range<usize>>,
}

/// Splits the request-target into path and query (RFC 9112 §3.2): origin-form
/// (`/path?query`), absolute-form (`http://host/path?query`, whose path is routed), and
/// asterisk-form for `OPTIONS *`. Anything else, authority-form included, is a 400.
fn split_target(
    bytes: &[u8],
    start: usize,
    len: usize,
    method: &Method,
) -> Result<TargetParts, RequestError> {
    let target = &bytes[start..start + len];
    if target == b"*" {
        if *method == Method::OPTIONS {
            return Ok(TargetParts {
                path: start..start,
                query: None,
                asterisk: true,
                authority: None,
            });
        }
        return Err(RequestError::bad_request(
            "asterisk-form is only for OPTIONS",
        ));
    }
    if target.iter().any(|&b| b >= 0x80 || b == b'#') {
        return Err(RequestError::bad_request(
            "invalid character in request-target",
        ));
    }
    let mut authority = None;
    let path_start = if target.first() == Some(&b'/') {
        0
    } else {
        let scheme_end = memchr::memmem::find(target, b"://")
            .filter(|&end| {
                let scheme = &target[..end];
                scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")
            })
            .ok_or(RequestError::bad_request(
                "request-target is neither origin-form nor absolute-form",
            ))?;
        let authority_start = scheme_end + 3;
        let after = &target[authority_start..];
        let authority_len = after
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(after.len());
        if authority_len == 0 {
            return Err(RequestError::bad_request(
                "absolute-form without an authority",
            ));
        }
        authority = Some(start + authority_start..start + authority_start + authority_len);
        authority_start + authority_len
    };
    let rest = &target[path_start..];
    let (path_len, query) = match memchr::memchr(b'?', rest) {
        Some(q) => (q, Some(start + path_start + q + 1..start + len)),
        None => (rest.len(), None),
    };
    let path = start + path_start..start + path_start + path_len;
    if path_len > 0 && bytes[path.start] != b'/' {
        return Err(RequestError::bad_request("path must start with /"));
    }
    Ok(TargetParts {
        path,
        query,
        asterisk: false,
        authority,
    })
}

/// The field rules that decide framing and persistence (RFC 9112 §6, §9; RFC 9110 §7.2).
fn apply_field_rules(head: &mut RequestHead) -> Result<(), RequestError> {
    let mut host_count = 0usize;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding_seen = false;
    let mut chunked_last = false;
    let mut other_coding = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for header in &head.headers {
        let name = head.header_name(header);
        let value = head.header_value(header);
        if value.contains(&b'\r') || value.contains(&b'\n') {
            return Err(RequestError::bad_request("line break in a field value"));
        }
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                host_count += 1;
                if !is_valid_host(value) {
                    return Err(RequestError::bad_request("invalid Host"));
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    head.expect_continue = true;
                } else {
                    return Err(RequestError::new(417, "unsupported expectation"));
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                connection_close |= list_contains(value, "close");
                connection_keep_alive |= list_contains(value, "keep-alive");
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // RFC 9112 §6.3: a repeated or invalid Content-Length is unrecoverable.
                if content_length.is_some() {
                    return Err(RequestError::bad_request("repeated Content-Length"));
                }
                content_length = Some(parse_content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                transfer_encoding_seen = true;
                for coding in value.split(|&b| b == b',') {
                    let coding = trim_ows(coding);
                    if coding.is_empty() {
                        continue;
                    }
                    if chunked_last {
                        // RFC 9112 §7: chunked must be applied once and last.
                        return Err(RequestError::bad_request("chunked is not the final coding"));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked_last = true;
                    } else {
                        other_coding = true;
                    }
                }
            }
            _ => {}
        }
    }
    if !head.http10 && host_count == 0 {
        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
        // HTTP/1.1 request message that lacks a Host header field and to any request
        // message that contains more than one Host header field line".
        return Err(RequestError::bad_request("missing Host"));
    }
    if host_count > 1 {
        return Err(RequestError::bad_request("repeated Host"));
    }
    if transfer_encoding_seen {
        if head.http10 {
            // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            return Err(RequestError::bad_request(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if content_length.is_some() {
            // RFC 9112 §6.1: both present is a smuggling attempt; refuse and close.
            return Err(RequestError::bad_request(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if !chunked_last {
            // RFC 9112 §6.3: the final coding is not chunked, so the length is unknown.
            return Err(RequestError::bad_request(
                "final transfer coding is not chunked",
            ));
        }
        if other_coding {
            return Err(RequestError::new(501, "unsupported transfer coding"));
        }
        head.framing = Framing::Chunked;
    } else if let Some(length) = content_length {
        head.framing = if length == 0 {
            Framing::Empty
        } else {
            Framing::Length(length)
        };
    }
    head.keep_alive = if head.http10 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    if head.http10 {
        // Expect is an HTTP/1.1 feature; an HTTP/1.0 client cannot wait for a 100.
        head.expect_continue = false;
    }
    Ok(())
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`: no sign, no spaces, no list, no overflow.
fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::bad_request("invalid Content-Length"));
    }
    value.iter().try_fold(0u64, |total, &digit| {
        total
            .checked_mul(10)
            .and_then(|total| total.checked_add(u64::from(digit - b'0')))
            .ok_or(RequestError::bad_request("Content-Length overflows"))
    })
}

/// RFC 9110 §7.2: `Host = uri-host [ ":" port ]`; we accept the characters of a reg-name, an
/// IPv4 address or a bracketed IPv6 literal, and an all-digit port.
fn is_valid_host(value: &[u8]) -> bool {
    if value.is_empty() {
        return true; // RFC 9112 §3.2: an empty Host is allowed when the URI has no authority.
    }
    let (host, port) = if value.first() == Some(&b'[') {
        match memchr::memchr(b']', value) {
            Some(close) => {
                // RFC 3986 §3.2.2: `IP-literal = "[" ( IPv6address / IPvFuture ) "]"`, and
                // after the host only `":" port` may follow.
                let inner = &value[1..close];
                let after = &value[close + 1..];
                if !(is_ipv6_address(inner) || is_ipv_future(inner))
                    || !(after.is_empty() || after[0] == b':')
                {
                    return false;
                }
                (&value[..=close], after)
            }
            None => return false,
        }
    } else {
        match memchr::memchr(b':', value) {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        }
    };
    let host_ok = host.first() == Some(&b'[')
        || host
            .iter()
            .all(|&b| is_unreserved_or_sub_delim(b) || b == b'%');
    let port_ok = port.is_empty() || (port.len() <= 6 && port[1..].iter().all(u8::is_ascii_digit));
    !host.is_empty() && host_ok && port_ok
}

/// RFC 3986 §2.3 and §2.2: `unreserved / sub-delims`, the bytes a host name (with `%`
/// for pct-encoding) and an IPvFuture (with `:`) are made of.
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

fn is_ipv6_address(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

/// RFC 3986 §3.2.2: `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ipv_future(text: &[u8]) -> bool {
    let Some(rest) = text.strip_prefix(b"v").or_else(|| text.strip_prefix(b"V")) else {
        return false;
    };
    let Some(dot) = memchr::memchr(b'.', rest) else {
        return false;
    };
    let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
    !version.is_empty()
        && version.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&b| is_unreserved_or_sub_delim(b) || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, RequestError> {
        let mut buffer = BytesMut::from(raw);
        parse_head(&mut buffer, &Limits::default())
    }

    fn status_of(raw: &[u8]) -> u16 {
        parse(raw).expect_err("should be refused").status
    }

    #[test]
    fn parses_a_simple_request() {
        let head =
            parse(b"GET /a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-A:  v  \r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.raw_path(), b"/a%20b/c");
        assert_eq!(head.raw_query(), b"x=1&y=2");
        assert_eq!(head.first_header("x-a"), Some(&b"v"[..]));
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.keep_alive && !head.http10);
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse(b"").unwrap().is_none());
    }

    #[test]
    fn absolute_form_routes_its_path() {
        let head = parse(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.raw_path(), b"/p");
        assert_eq!(head.raw_query(), b"q");
        let bare = parse(b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(bare.raw_path(), b"/");
    }

    #[test]
    fn framing_rules() {
        let head = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Length(12));
        let head = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(
            status_of(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(status_of(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert!(parse(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
            .unwrap()
            .is_some());
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        for bad in [
            &b"[::1]x"[..],
            b"[127.0.0.1:80]",
            b"[1.2.3.4]",
            b"[::1]:80x",
            b"[]",
            b"[v1.]",
            b"[::1",
        ] {
            let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            raw.extend_from_slice(bad);
            raw.extend_from_slice(b"\r\n\r\n");
            assert_eq!(status_of(&raw), 400, "{}", String::from_utf8_lossy(bad));
        }
        for good in [
            &b"[::1]"[..],
            b"[::ffff:1.2.3.4]:8080",
            b"[v7.fe:80]",
            b"[::1]:",
        ] {
            let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            raw.extend_from_slice(good);
            raw.extend_from_slice(b"\r\n\r\n");
            assert!(
                parse(&raw).unwrap().is_some(),
                "{}",
                String::from_utf8_lossy(good)
            );
        }
    }

    #[test]
    fn bare_lf_is_refused() {
        assert_eq!(status_of(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n"),
            400
        );
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), 400);
    }

    #[test]
    fn higher_minor_versions_are_http_1_1() {
        let head = parse(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.http10);
        let head = parse(b"\r\nGET / HTTP/1.9\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.http10 && head.keep_alive);
        assert_eq!(status_of(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status_of(b"GET / HTTP/3.1\r\nHost: a\r\n\r\n"), 505);
        assert!(parse(b"GET / HTTP/1.2\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let head = parse(b"GET http://good.example:81/p HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.host(), b"good.example:81");
        assert_eq!(head.first_header("host"), Some(&b"good.example:81"[..]));
        assert_eq!(
            status_of(b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            400
        );
        let origin = parse(b"GET / HTTP/1.1\r\nHost: h:1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(origin.host(), b"h:1");
    }

    #[test]
    fn syntax_rules() {
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"),
            400
        );
        assert_eq!(status_of(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status_of(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status_of(b"GET / HTTX/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(
            status_of(b"GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(status_of(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert!(
            parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap()
                .unwrap()
                .asterisk
        );
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"),
            417
        );
    }

    #[test]
    fn persistence() {
        let head = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive);
        let head = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive);
        let head = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_request_line: 20,
            max_head_size: 64,
            max_headers: 2,
            ..Limits::default()
        };
        let mut long_line = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n"[..]);
        assert_eq!(parse_head(&mut long_line, &limits).unwrap_err().status, 414);
        let mut unfinished_line = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert_eq!(
            parse_head(&mut unfinished_line, &limits)
                .unwrap_err()
                .status,
            414
        );
        let mut many = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"[..]);
        assert_eq!(parse_head(&mut many, &limits).unwrap_err().status, 431);
        let mut big = BytesMut::from(
            &b"GET / HTTP/1.1\r\nHost: a\r\nA: 0123456789012345678901234567890123456789\r\n"[..],
        );
        assert_eq!(parse_head(&mut big, &limits).unwrap_err().status, 431);
    }

    /// Feeds `raw` whole, then one byte at a time; returns both outcomes as statuses
    /// (0 for a parsed head, 1 for "needs more").
    fn whole_and_bytewise(raw: &[u8], limits: &Limits) -> (u16, u16) {
        let code = |result: Result<Option<RequestHead>, RequestError>| match result {
            Ok(Some(_)) => 0,
            Ok(None) => 1,
            Err(error) => error.status,
        };
        let whole = code(parse_head(&mut BytesMut::from(raw), limits));
        let mut buffer = BytesMut::new();
        let mut bytewise = 1;
        for &byte in raw {
            buffer.extend_from_slice(&[byte]);
            bytewise = code(parse_head(&mut buffer, limits));
            if bytewise != 1 {
                break;
            }
        }
        (whole, bytewise)
    }

    #[test]
    fn outcome_does_not_depend_on_how_the_head_arrives() {
        // Found by the parse_request fuzz target: a bad byte early in an over-long request
        // line was a 400 when read byte by byte but a 414 when the line came in one read.
        let limits = Limits {
            max_request_line: 24,
            max_head_size: 64,
            max_headers: 2,
            ..Limits::default()
        };
        let raw = b"POST /\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1fg\x1f\x1fth: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(whole_and_bytewise(raw, &limits), (400, 400));
        // A bad byte past the line limit is never looked at: 414 either way.
        assert_eq!(
            whole_and_bytewise(
                b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x01 HTTP/1.1\r\n",
                &limits
            ),
            (414, 414)
        );
        // The same for the head limit: 431 or 400 according to where the bad byte is.
        let limits = Limits {
            max_head_size: 40,
            ..Limits::default()
        };
        let late = b"GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaa\x01\r\n\r\n";
        assert_eq!(whole_and_bytewise(late, &limits), (431, 431));
        let early = b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(whole_and_bytewise(early, &limits), (400, 400));
        // A complete head within the limit is parsed even when more bytes follow it.
        let mut buffer = BytesMut::from(
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        );
        assert!(parse_head(
            &mut buffer,
            &Limits {
                max_head_size: 27,
                ..Limits::default()
            }
        )
        .unwrap()
        .is_some());
    }

    #[test]
    fn pipelined_heads_come_off_one_at_a_time() {
        let mut buffer = BytesMut::from(
            &b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        );
        let first = parse_head(&mut buffer, &Limits::default())
            .unwrap()
            .unwrap();
        let second = parse_head(&mut buffer, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(first.raw_path(), b"/1");
        assert_eq!(second.raw_path(), b"/2");
        assert!(buffer.is_empty());
    }
}
