//! Answers the server writes itself (errors, 404, 405, preflights, redirects, file
//! answers): the one place where a server-made head is assembled from the server's
//! defaults (`Server`, persistence, the request's CORS lines).

use bytes::Bytes;

use crate::app::exchange::Outgoing;
use crate::http::encode::{encode_simple, Persistence, ServerHeaders};

/// The content type of every plain-text answer the server writes.
pub const TEXT_PLAIN: &[u8] = b"text/plain; charset=utf-8";

/// What every server-made answer to one request shares.
#[derive(Clone, Copy, Debug)]
pub struct ServerAnswer<'a> {
    /// The `Server` value; empty sends none.
    pub server_identifier: &'a str,
    pub persistence: Persistence,
    /// Header lines every answer to this request carries (CORS, cross-origin isolation).
    pub extra_lines: &'a [u8],
    /// HEAD: the length is announced, the body left out (RFC 9110 §9.3.2).
    pub head_only: bool,
}

impl<'a> ServerAnswer<'a> {
    /// The defaults the encoder adds to a head, with `more_lines` after the shared ones.
    pub fn server_headers(&self, extra_lines: &'a [u8]) -> ServerHeaders<'a> {
        ServerHeaders {
            server: self.server_identifier.as_bytes(),
            extra_lines,
            persistence: self.persistence,
        }
    }

    /// A whole answer with a plain-text body.
    pub fn text(&self, status: u16, headers: &[(&[u8], &[u8])], body: &[u8]) -> Outgoing {
        self.text_with_lines(status, self.extra_lines, headers, body)
    }

    /// As [`ServerAnswer::text`], with other pre-rendered lines than the shared ones.
    pub fn text_with_lines(
        &self,
        status: u16,
        extra_lines: &[u8],
        headers: &[(&[u8], &[u8])],
        body: &[u8],
    ) -> Outgoing {
        let mut bytes = Vec::with_capacity(192 + body.len());
        let defaults = ServerHeaders {
            server: self.server_identifier.as_bytes(),
            extra_lines,
            persistence: self.persistence,
        };
        encode_simple(
            &mut bytes,
            status,
            &defaults,
            headers,
            TEXT_PLAIN,
            body,
            self.head_only,
        );
        Outgoing::new(status, bytes, Bytes::new(), self.persistence)
    }

    /// The error answer for a refused request (`Reason: why`); the connection then closes.
    pub fn refusal(server_identifier: &'a str, status: u16, reason: &str) -> Outgoing {
        let body = format!("{}: {reason}", crate::http::status::reason_phrase(status));
        let answer = ServerAnswer {
            server_identifier,
            persistence: Persistence::Close,
            extra_lines: b"",
            head_only: false,
        };
        answer.text(status, &[], body.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_closes_and_names_its_reason() {
        let answer = ServerAnswer::refusal("T", 400, "bad host");
        let text = String::from_utf8(answer.bytes).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\r\nServer: T\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nBad Request: bad host"));
        assert!(answer.close);
        assert_eq!(answer.status, 400);
    }

    #[test]
    fn head_only_announces_the_length_without_the_body() {
        let answer = ServerAnswer {
            server_identifier: "",
            persistence: Persistence::KeepAlive,
            extra_lines: b"X-A: 1\r\n",
            head_only: true,
        };
        let outgoing = answer.text(404, &[], b"Not found");
        let text = String::from_utf8(outgoing.bytes).unwrap_or_default();
        assert!(text.contains("Content-Length: 9\r\n"));
        assert!(text.contains("X-A: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("Server:"));
        assert!(!outgoing.close);
    }
}
