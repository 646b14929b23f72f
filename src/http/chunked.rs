//! Decoding of the chunked transfer coding (RFC 9112 §7.1), strictly and incrementally.
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size   = 1*HEXDIG
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! Strict where leniency lets requests be smuggled: hex digits only, overflow refused, the
//! CRLF after every chunk's data checked, extensions and trailers bounded and then dropped
//! (RFC 9112 §7.1.1: "A recipient MUST ignore unrecognized chunk extensions").

use bytes::{Buf, BytesMut};

use crate::http::error::RequestError;
use crate::http::token::{is_field_value_byte, is_tchar};

/// Most bytes of chunk extensions and of trailer fields accepted in one message.
pub const MAX_METADATA: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size {
        value: u64,
        digits: u8,
    },
    /// Whitespace after the size: only BWS before a `;` may follow.
    SizeBws,
    Extension,
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerName,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// The decoder of one chunked body; feed it bytes as they arrive.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    metadata_len: usize,
    /// The size of the chunk whose extensions are being skipped.
    pending_size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            metadata_len: 0,
            pending_size: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can of `input`, appending chunk data to `body`. Returns `Ok(true)`
    /// once the whole chunked body, trailers included, has been read; the bytes after it are
    /// left in `input` for the next request.
    pub fn decode(
        &mut self,
        input: &mut BytesMut,
        body: &mut Vec<u8>,
        max_body: u64,
    ) -> Result<bool, RequestError> {
        while !input.is_empty() {
            if let State::Data { remaining } = self.state {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                if (body.len() + take) as u64 > max_body {
                    return Err(RequestError::new(413, "request body too large"));
                }
                body.extend_from_slice(&input[..take]);
                input.advance(take);
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            let byte = input[0];
            input.advance(1);
            self.state = self.step(byte)?;
            if let State::Data { remaining } = self.state {
                // A chunk announced bigger than what the body may still hold is refused
                // before its data is read, as an oversized Content-Length is.
                if remaining > max_body.saturating_sub(body.len() as u64) {
                    return Err(RequestError::new(413, "request body too large"));
                }
            }
            if self.state == State::Done {
                return Ok(true);
            }
        }
        Ok(self.is_done())
    }

    fn step(&mut self, byte: u8) -> Result<State, RequestError> {
        let next = match self.state {
            State::Size { value, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 16 {
                        return Err(RequestError::bad_request("chunk size overflows"));
                    }
                    let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                    State::Size {
                        value: value << 4 | digit,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(RequestError::bad_request("invalid chunk size")),
                b'\r' => State::SizeLf { value },
                b';' => {
                    self.note_metadata()?;
                    self.pending_size = value;
                    State::Extension
                }
                // RFC 9112 §7.1.1: `chunk-ext = *( BWS ";" BWS chunk-ext-name ...)`: BWS is
                // only allowed before a `;`. `5 \r\n` is no chunk line; a front end that
                // reads it otherwise could split the body elsewhere, so it is refused.
                b' ' | b'\t' => {
                    self.note_metadata()?;
                    self.pending_size = value;
                    State::SizeBws
                }
                _ => return Err(RequestError::bad_request("invalid chunk size")),
            },
            State::SizeBws => match byte {
                b' ' | b'\t' => {
                    self.note_metadata()?;
                    State::SizeBws
                }
                b';' => {
                    self.note_metadata()?;
                    State::Extension
                }
                _ => {
                    return Err(RequestError::bad_request(
                        "whitespace after a chunk size not followed by an extension",
                    ))
                }
            },
            State::Extension => match byte {
                b'\r' => State::SizeLf {
                    value: self.pending_size,
                },
                _ if is_field_value_byte(byte) => {
                    self.note_metadata()?;
                    State::Extension
                }
                _ => return Err(RequestError::bad_request("invalid chunk extension")),
            },
            State::SizeLf { value } => match byte {
                b'\n' if value == 0 => State::TrailerLineStart,
                b'\n' => State::Data { remaining: value },
                _ => {
                    return Err(RequestError::bad_request(
                        "chunk size line not ended by CRLF",
                    ))
                }
            },
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(RequestError::bad_request("chunk data not followed by CRLF")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(RequestError::bad_request("chunk data not followed by CRLF")),
            },
            // RFC 9112 §7.1.2: trailer fields have the syntax of header fields: a token, a
            // colon with no whitespace before it, a value; no obs-fold.
            State::TrailerLineStart => match byte {
                b'\r' => State::FinalLf,
                _ if is_tchar(byte) => {
                    self.note_metadata()?;
                    State::TrailerName
                }
                _ => return Err(RequestError::bad_request("invalid trailer field")),
            },
            State::TrailerName => match byte {
                b':' => State::TrailerLine,
                _ if is_tchar(byte) => {
                    self.note_metadata()?;
                    State::TrailerName
                }
                _ => return Err(RequestError::bad_request("invalid trailer field name")),
            },
            State::TrailerLine => match byte {
                b'\r' => State::TrailerLf,
                _ if is_field_value_byte(byte) => {
                    self.note_metadata()?;
                    State::TrailerLine
                }
                _ => return Err(RequestError::bad_request("invalid trailer field value")),
            },
            State::TrailerLf => match byte {
                b'\n' => State::TrailerLineStart,
                _ => return Err(RequestError::bad_request("trailer line not ended by CRLF")),
            },
            State::FinalLf => match byte {
                b'\n' => State::Done,
                _ => return Err(RequestError::bad_request("chunked body not ended by CRLF")),
            },
            State::Data { .. } | State::Done => self.state,
        };
        Ok(next)
    }

    fn note_metadata(&mut self) -> Result<(), RequestError> {
        self.metadata_len += 1;
        if self.metadata_len > MAX_METADATA {
            return Err(RequestError::new(
                431,
                "chunk extensions or trailers too large",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), RequestError> {
        let mut decoder = ChunkedDecoder::default();
        let mut buffer = BytesMut::from(input);
        let mut body = Vec::new();
        assert!(
            decoder.decode(&mut buffer, &mut body, 1 << 20)?,
            "incomplete"
        );
        Ok((body, buffer.to_vec()))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (body, rest) =
            decode_all(b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET")
                .unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(rest, b"GET");
    }

    #[test]
    fn allows_bws_before_an_extension() {
        let (body, _) = decode_all(b"5 ;a=b\r\nhello\r\n0 \t; x\r\n\r\n").unwrap();
        assert_eq!(body, b"hello");
    }

    #[test]
    fn decodes_byte_by_byte() {
        let input = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        for (i, byte) in input.iter().enumerate() {
            let mut piece = BytesMut::from(&[*byte][..]);
            let done = decoder.decode(&mut piece, &mut body, 1 << 20).unwrap();
            assert_eq!(done, i == input.len() - 1);
        }
        assert_eq!(body, b"abc0123456789");
    }

    #[test]
    fn refuses_malformed_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"10000000000000000\r\n",
            b"3\r\nabc\r\n0\r\n\r\r",
            b"3 \x01\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\n folded\r\n\r\n",
            b"0\r\nno-colon\r\n\r\n",
            b"0\r\nX(: 1\r\n\r\n",
        ] {
            let mut decoder = ChunkedDecoder::default();
            let mut buffer = BytesMut::from(bad);
            let result = decoder.decode(&mut buffer, &mut Vec::new(), 1 << 20);
            assert!(
                result.is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn enforces_the_body_limit() {
        let mut decoder = ChunkedDecoder::default();
        let mut buffer = BytesMut::from(&b"8\r\n12345678\r\n0\r\n\r\n"[..]);
        let error = decoder.decode(&mut buffer, &mut Vec::new(), 4).unwrap_err();
        assert_eq!(error.status, 413);
        // Refused on the size line alone, before any data.
        let mut decoder = ChunkedDecoder::default();
        let mut size_only = BytesMut::from(&b"ffffffff\r\n"[..]);
        let error = decoder
            .decode(&mut size_only, &mut Vec::new(), 4)
            .unwrap_err();
        assert_eq!(error.status, 413);
    }

    #[test]
    fn bounds_extensions() {
        let mut input = b"1;".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_METADATA + 1));
        let mut decoder = ChunkedDecoder::default();
        let mut buffer = BytesMut::from(&input[..]);
        assert_eq!(
            decoder
                .decode(&mut buffer, &mut Vec::new(), 1 << 20)
                .unwrap_err()
                .status,
            431
        );
    }
}
