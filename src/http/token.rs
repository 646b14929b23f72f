//! Character classes of RFC 9110 §5: what may stand in a field name and a field value.
//!
//! Everything the server writes from caller-supplied text passes through these checks, so
//! nothing malformed (a smuggled CRLF, a NUL, a space in a name) can ever reach the wire.

/// RFC 9110 §5.6.2: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
/// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
pub const fn is_tchar(byte: u8) -> bool {
    matches!(byte,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `token = 1*tchar`.
pub fn is_token(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&byte| is_tchar(byte))
}

/// RFC 9110 §5.5: `field-vchar = VCHAR / obs-text`, with SP and HTAB allowed inside.
/// Every other control byte (CR, LF and NUL among them) is refused.
pub const fn is_field_value_byte(byte: u8) -> bool {
    byte == b'\t' || (byte >= 0x20 && byte != 0x7f)
}

/// A whole field value: only field-value bytes.
pub fn is_field_value(text: &[u8]) -> bool {
    text.iter().all(|&byte| is_field_value_byte(byte))
}

/// Strips the optional whitespace (SP / HTAB) that RFC 9110 §5.5 excludes from a field value.
pub fn trim_ows(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &text[start..end]
}

/// Whether a comma-separated header value lists `wanted` (ASCII case-insensitive).
pub fn list_contains(value: &[u8], wanted: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| trim_ows(item).eq_ignore_ascii_case(wanted.as_bytes()))
}

/// Why a header a handler set cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderRejection {
    /// The name is not a token (RFC 9110 §5.1).
    NameNotToken,
    /// The value holds a control character: CR, LF, NUL, ... (RFC 9110 §5.5).
    ControlCharacter,
    /// `Content-Length` or `Transfer-Encoding`: the server frames the body itself.
    ServerOwned,
}

/// The rule for a header set by a handler: a token name, a field value, not one of the
/// framing headers. Returns the value to send, trimmed of OWS. `response.rs` raises
/// `ValueError` for a rejection; the fuzz target applies the same function.
pub fn check_handler_header<'v>(name: &str, value: &'v str) -> Result<&'v str, HeaderRejection> {
    if !is_token(name.as_bytes()) {
        return Err(HeaderRejection::NameNotToken);
    }
    if !is_field_value(value.as_bytes()) {
        return Err(HeaderRejection::ControlCharacter);
    }
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(HeaderRejection::ServerOwned);
    }
    let start = value.len() - value.trim_start_matches([' ', '\t']).len();
    Ok(value[start..].trim_end_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"Content-Type"));
        assert!(is_token(b"x!#$%&'*+-.^_`|~9"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(!is_token(b"a\r\n"));
    }

    #[test]
    fn values() {
        assert!(is_field_value(b"text/html; charset=utf-8\t\xc3\xa9"));
        assert!(!is_field_value(b"a\r\nb"));
        assert!(!is_field_value(b"a\0"));
        assert!(!is_field_value(b"\x7f"));
    }

    #[test]
    fn handler_headers() {
        assert_eq!(check_handler_header("X-A", "  v w \t"), Ok("v w"));
        assert_eq!(
            check_handler_header("X A", "v"),
            Err(HeaderRejection::NameNotToken)
        );
        assert_eq!(
            check_handler_header("X-A", "v\r\nX: y"),
            Err(HeaderRejection::ControlCharacter)
        );
        assert_eq!(
            check_handler_header("content-LENGTH", "5"),
            Err(HeaderRejection::ServerOwned)
        );
    }

    #[test]
    fn trimming_and_lists() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert!(list_contains(b"keep-alive, Close", "close"));
        assert!(!list_contains(b"closed", "close"));
    }
}
