//! Status lines: the code and its reason phrase, rendered once per process.
//!
//! RFC 9112 §4: `status-line = HTTP-version SP status-code SP [ reason-phrase ]`. We always send
//! `HTTP/1.1` (a server sends its own highest minor version, RFC 9110 §6.2) and the phrase the
//! IANA registry gives the code; a code it does not name gets the generic phrase of its class.

use std::sync::LazyLock;

/// The lowest and highest codes a response may carry (RFC 9110 §15: three digits, 1xx to 5xx).
pub const MIN_STATUS: u16 = 100;
pub const MAX_STATUS: u16 = 599;

/// The registered reason phrase of `code`, or the generic one of its class.
// The registered codes come first and the class ranges after them catch the rest.
#[allow(clippy::match_overlapping_arm)]
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        100..=199 => "Informational",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        _ => "Server Error",
    }
}

static STATUS_LINES: LazyLock<Vec<Box<[u8]>>> = LazyLock::new(|| {
    (MIN_STATUS..=MAX_STATUS)
        .map(|code| {
            format!("HTTP/1.1 {code} {}\r\n", reason_phrase(code))
                .into_bytes()
                .into()
        })
        .collect()
});

/// `HTTP/1.1 <code> <phrase>\r\n` for a code in `MIN_STATUS..=MAX_STATUS`.
///
/// Callers validate the code first; an out-of-range code falls back to the 500 line rather
/// than panicking, so a bug here can never crash a connection task.
pub fn status_line(code: u16) -> &'static [u8] {
    let index = if (MIN_STATUS..=MAX_STATUS).contains(&code) {
        code
    } else {
        500
    };
    &STATUS_LINES[usize::from(index - MIN_STATUS)]
}

/// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never carry content, so they get neither a
/// body nor a `Content-Length` (RFC 9110 §8.6: "A server MUST NOT send a Content-Length
/// header field in any response with a status code of 1xx or 204").
pub fn forbids_body(code: u16) -> bool {
    code < 200 || code == 204 || code == 304
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_and_generic_phrases() {
        assert_eq!(status_line(200), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(status_line(418), b"HTTP/1.1 418 I'm a teapot\r\n");
        assert_eq!(status_line(299), b"HTTP/1.1 299 Success\r\n");
        assert_eq!(status_line(599), b"HTTP/1.1 599 Server Error\r\n");
        assert_eq!(status_line(42), b"HTTP/1.1 500 Internal Server Error\r\n");
    }

    #[test]
    fn statuses_without_body() {
        assert!(forbids_body(100) && forbids_body(204) && forbids_body(304));
        assert!(!forbids_body(200) && !forbids_body(404));
    }
}
