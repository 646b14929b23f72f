//! Encoding of the chunked transfer coding (RFC 9112 §7.1), the send side of `chunked`.
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! A streamed body goes out as one chunk per batch of pieces, the size in lowercase hex with
//! no extension, and ends with `0\r\n\r\n` (no trailer fields). An empty piece is never
//! framed: a zero-size chunk is the last chunk, so framing one would end the body early.

/// The last chunk and the empty trailer section that end a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The CRLF that follows every chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The `chunk-size CRLF` line in front of `len` bytes of chunk data, without allocating.
#[derive(Clone, Copy, Debug)]
pub struct ChunkHeader {
    bytes: [u8; 18],
    len: u8,
}

impl ChunkHeader {
    /// The header for a chunk of `len` bytes; `len` must not be zero (see the module doc).
    pub fn new(len: usize) -> Self {
        debug_assert!(len > 0, "a zero-size chunk would end the body");
        let mut bytes = [0u8; 18];
        let mut digits = [0u8; 16];
        let mut count = 0;
        let mut value = len as u64;
        loop {
            digits[count] = b"0123456789abcdef"[(value & 0xf) as usize];
            count += 1;
            value >>= 4;
            if value == 0 {
                break;
            }
        }
        for index in 0..count {
            bytes[index] = digits[count - 1 - index];
        }
        bytes[count] = b'\r';
        bytes[count + 1] = b'\n';
        ChunkHeader {
            bytes,
            len: (count + 2) as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Appends `data` to `out` as one chunk; nothing for empty data.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(ChunkHeader::new(data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(CHUNK_END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::chunked::ChunkedDecoder;
    use bytes::BytesMut;

    #[test]
    fn sizes_in_hex() {
        assert_eq!(ChunkHeader::new(1).as_bytes(), b"1\r\n");
        assert_eq!(ChunkHeader::new(15).as_bytes(), b"f\r\n");
        assert_eq!(ChunkHeader::new(16).as_bytes(), b"10\r\n");
        assert_eq!(ChunkHeader::new(65536).as_bytes(), b"10000\r\n");
        assert_eq!(
            ChunkHeader::new(usize::MAX).as_bytes(),
            b"ffffffffffffffff\r\n"
        );
    }

    #[test]
    fn empty_data_is_not_framed() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        assert!(out.is_empty());
    }

    #[test]
    fn round_trips_through_the_decoder() {
        let pieces: [&[u8]; 4] = [b"hello", b" ", &[7u8; 300], b"world\r\n0\r\n\r\n"];
        let mut wire = Vec::new();
        for piece in pieces {
            encode_chunk(&mut wire, piece);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut input = BytesMut::from(&wire[..]);
        let mut body = Vec::new();
        let done = ChunkedDecoder::default()
            .decode(&mut input, &mut body, u64::MAX)
            .unwrap();
        assert!(done);
        assert!(input.is_empty());
        assert_eq!(body, pieces.concat());
    }
}
