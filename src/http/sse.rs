//! The Server-Sent Events wire format (WHATWG HTML §9.2.6, "Interpreting an event stream"),
//! the encode side: one event (or comment) in, the exact bytes of the stream out.
//!
//! ```text
//! stream  = [ bom ] *event
//! event   = *( comment / field ) end-of-line
//! comment = colon *any-char end-of-line
//! field   = 1*name-char [ colon [ space ] *any-char ] end-of-line
//! end-of-line = ( cr lf / cr / lf )
//! ```
//!
//! What the encoder guarantees, so that a standard parser sees exactly what was sent:
//!
//! - `data` may span lines: it is split on CRLF, CR and LF alike (the parser's three
//!   end-of-line forms) into one `data:` field each, and the parser joins them back with LF.
//! - Every value is written after `": "`, since the parser strips one leading space: a value
//!   that itself starts with a space keeps it.
//! - `event` and `id` are one line, so CR or LF in them is refused; NUL in `id` too, since
//!   "if the field value does not contain U+0000 NULL" is the parser's condition for taking
//!   it (a NUL would make it drop the id silently), and in `event` for symmetry.
//! - `retry` is digits only, which is all the parser accepts ("consists of only ASCII
//!   digits").
//! - Lines end in LF and an event ends with a blank line, which dispatches it.

use std::fmt;

/// One event to encode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Event<'a> {
    pub data: &'a str,
    pub event: Option<&'a str>,
    pub id: Option<&'a str>,
    /// The reconnection time, in milliseconds.
    pub retry: Option<u64>,
}

/// Why an event cannot be encoded; the message is for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseError {
    /// `event` holds CR, LF or NUL.
    BadEvent,
    /// `id` holds CR, LF or NUL.
    BadId,
}

impl fmt::Display for SseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            SseError::BadEvent => "an event name must not hold CR, LF or NUL",
            SseError::BadId => "an event id must not hold CR, LF or NUL",
        })
    }
}

fn one_line(value: &str) -> bool {
    !value.bytes().any(|byte| matches!(byte, b'\r' | b'\n' | 0))
}

/// Splits text at CRLF, CR or LF, as the event-stream parser does.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Appends one event, ended by the blank line that dispatches it.
pub fn encode_event(out: &mut Vec<u8>, event: &Event<'_>) -> Result<(), SseError> {
    if event.event.is_some_and(|name| !one_line(name)) {
        return Err(SseError::BadEvent);
    }
    if event.id.is_some_and(|id| !one_line(id)) {
        return Err(SseError::BadId);
    }
    out.reserve(event.data.len() + 32);
    if let Some(name) = event.event {
        field(out, b"event", name);
    }
    if let Some(id) = event.id {
        field(out, b"id", id);
    }
    if let Some(retry) = event.retry {
        let mut digits = itoa::Buffer::new();
        field(out, b"retry", digits.format(retry));
    }
    for line in lines(event.data) {
        field(out, b"data", line);
    }
    out.push(b'\n');
    Ok(())
}

/// Appends a comment (ignored by the parser; keeps idle connections alive). Multi-line text
/// becomes one comment line each.
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    for line in lines(text) {
        out.push(b':');
        if !line.is_empty() {
            out.push(b' ');
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// What the server sends on an idle event stream every `heartbeat` seconds.
pub const HEARTBEAT: &[u8] = b":\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// The WHATWG parsing algorithm, enough of it to check what the encoder writes:
    /// returns (event type, data, last event id, retry) per dispatched event.
    fn parse(stream: &str) -> Vec<(String, String, String, Option<u64>)> {
        let mut events = Vec::new();
        let (mut kind, mut data, mut last_id, mut retry) =
            (String::new(), String::new(), String::new(), None);
        for line in lines(stream) {
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    let name = if kind.is_empty() { "message" } else { &kind };
                    events.push((name.to_owned(), data.clone(), last_id.clone(), retry));
                }
                data.clear();
                kind.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.find(':') {
                Some(at) => {
                    let value = &line[at + 1..];
                    (&line[..at], value.strip_prefix(' ').unwrap_or(value))
                }
                None => (line, ""),
            };
            match name {
                "event" => kind = value.to_owned(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => last_id = value.to_owned(),
                "retry" if value.bytes().all(|b| b.is_ascii_digit()) => {
                    retry = value.parse().ok();
                }
                _ => {}
            }
        }
        events
    }

    fn encoded(event: &Event<'_>) -> String {
        let mut out = Vec::new();
        encode_event(&mut out, event).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn simple_event() {
        let text = encoded(&Event {
            data: "hello",
            ..Event::default()
        });
        assert_eq!(text, "data: hello\n\n");
    }

    #[test]
    fn all_fields() {
        let text = encoded(&Event {
            data: "x",
            event: Some("tick"),
            id: Some("42"),
            retry: Some(1500),
        });
        assert_eq!(text, "event: tick\nid: 42\nretry: 1500\ndata: x\n\n");
        assert_eq!(
            parse(&text),
            vec![("tick".into(), "x".into(), "42".into(), Some(1500))]
        );
    }

    #[test]
    fn multi_line_data_on_every_line_ending() {
        let text = encoded(&Event {
            data: "a\nb\r\nc\rd\n\ne",
            ..Event::default()
        });
        assert_eq!(
            text,
            "data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n"
        );
        assert_eq!(parse(&text)[0].1, "a\nb\nc\nd\n\ne");
    }

    #[test]
    fn leading_space_and_colons_survive() {
        let data = "  two spaces: and a colon";
        let text = encoded(&Event {
            data,
            ..Event::default()
        });
        assert_eq!(parse(&text)[0].1, data);
    }

    #[test]
    fn trailing_newline_is_kept() {
        let text = encoded(&Event {
            data: "end\n",
            ..Event::default()
        });
        assert_eq!(text, "data: end\ndata: \n\n");
        assert_eq!(parse(&text)[0].1, "end\n");
    }

    #[test]
    fn line_breaks_and_nul_refused_in_event_and_id() {
        for bad in ["a\nb", "a\rb", "a\0b", "\r\n"] {
            let mut out = Vec::new();
            let event = Event {
                data: "x",
                event: Some(bad),
                ..Event::default()
            };
            assert_eq!(encode_event(&mut out, &event), Err(SseError::BadEvent));
            let event = Event {
                data: "x",
                id: Some(bad),
                ..Event::default()
            };
            assert_eq!(encode_event(&mut out, &event), Err(SseError::BadId));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn comments() {
        let mut out = Vec::new();
        encode_comment(&mut out, "one\ntwo");
        encode_comment(&mut out, "");
        assert_eq!(out, b": one\n: two\n\n:\n\n");
        assert!(parse(std::str::from_utf8(&out).unwrap()).is_empty());
        assert!(parse(std::str::from_utf8(HEARTBEAT).unwrap()).is_empty());
    }

    #[test]
    fn unicode_data() {
        let data = "héllo\u{2028}wörld 🎉";
        let text = encoded(&Event {
            data,
            ..Event::default()
        });
        assert_eq!(parse(&text)[0].1, data);
    }
}
