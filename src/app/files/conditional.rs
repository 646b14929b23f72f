//! Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14).
//!
//! A file's `ETag` is built from its size and modification time (as nginx does), with the
//! content coding appended for a precompressed variant, since each representation needs
//! its own tag (§8.8.3). It is a strong tag: the same size and nanosecond mtime are taken to
//! mean the same bytes, which is what makes `If-Range` usable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::token::trim_ows;

/// The validators of one representation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` value, quotes included.
    pub etag: String,
    /// The modification time, truncated to whole seconds as HTTP dates are.
    pub modified: Option<SystemTime>,
}

impl Validators {
    pub fn new(size: u64, modified: Option<SystemTime>, coding: Option<&str>) -> Self {
        let since_epoch = modified
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let etag = match coding {
            Some(coding) => format!("\"{:x}-{:x}-{coding}\"", since_epoch.as_nanos(), size),
            None => format!("\"{:x}-{:x}\"", since_epoch.as_nanos(), size),
        };
        let modified = modified.map(|_| UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()));
        Validators { etag, modified }
    }

    pub fn last_modified(&self) -> Option<String> {
        self.modified.map(httpdate::fmt_http_date)
    }
}

/// The entity-tags of an `If-None-Match` / `If-Match` list; `None` for `*`.
fn entity_tags(value: &[u8]) -> Option<Vec<&[u8]>> {
    let value = trim_ows(value);
    if value == b"*" {
        return None;
    }
    Some(
        value
            .split(|&b| b == b',')
            .map(trim_ows)
            .filter(|tag| !tag.is_empty())
            .collect(),
    )
}

/// Weak comparison (§8.8.3.2): the opaque tags match, whatever their `W/` prefixes.
fn weak_match(a: &[u8], b: &[u8]) -> bool {
    let strip = |tag: &[u8]| -> Vec<u8> { tag.strip_prefix(b"W/").unwrap_or(tag).to_vec() };
    strip(a) == strip(b)
}

/// Whether a GET or HEAD is answered `304 Not Modified`.
///
/// RFC 9110 §13.2.2: `If-None-Match` is evaluated first; when present, `If-Modified-Since`
/// is ignored. `If-None-Match` is false (so 304) when any listed tag weakly matches the
/// current one, or it is `*` (the file exists). `If-Modified-Since` is false (so 304) when
/// the file has not been modified after the given date; an invalid date is ignored (§13.1.3).
pub fn not_modified(
    validators: &Validators,
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
) -> bool {
    if let Some(value) = if_none_match {
        return match entity_tags(value) {
            None => true,
            Some(tags) => tags
                .iter()
                .any(|tag| weak_match(tag, validators.etag.as_bytes())),
        };
    }
    let (Some(value), Some(modified)) = (if_modified_since, validators.modified) else {
        return false;
    };
    let Some(since) = std::str::from_utf8(value)
        .ok()
        .and_then(|text| httpdate::parse_http_date(text.trim()).ok())
    else {
        return false;
    };
    modified <= since
}

/// Whether an `If-Range` lets the `Range` apply (RFC 9110 §13.1.5): an entity-tag must
/// match strongly (a weak tag never does); a date must equal the `Last-Modified` exactly.
pub fn if_range_holds(validators: &Validators, if_range: Option<&[u8]>) -> bool {
    let Some(value) = if_range.map(trim_ows) else {
        return true;
    };
    if value.starts_with(b"\"") {
        return value == validators.etag.as_bytes();
    }
    if value.starts_with(b"W/") {
        return false;
    }
    let date = std::str::from_utf8(value)
        .ok()
        .and_then(|text| httpdate::parse_http_date(text).ok());
    matches!((date, validators.modified), (Some(date), Some(modified)) if date == modified)
}

/// What a `Range` header asks of a file of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, another unit, malformed, or several ranges): send it all.
    Full,
    /// One satisfiable range: `start..=end` (206).
    Part { start: u64, end: u64 },
    /// A range that selects nothing of the file (416).
    Unsatisfiable,
}

/// Parses a `Range` value for a file of `size` bytes (RFC 9110 §14.1.2, §14.2).
///
/// Only single ranges are served as 206; a list of ranges gets the whole file with 200,
/// which §14.2 allows ("A server MAY ignore the Range header field"), and which saves a
/// multipart/byteranges body no browser needs. A malformed value is ignored the same way.
pub fn parse_range(value: &[u8], size: u64) -> RangeRequest {
    let value = trim_ows(value);
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeRequest::Full;
    };
    let (unit, spec) = (trim_ows(&value[..eq]), trim_ows(&value[eq + 1..]));
    if !unit.eq_ignore_ascii_case(b"bytes") || spec.contains(&b',') {
        return RangeRequest::Full;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    let number = |digits: &[u8]| -> Option<u64> {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    match (first.is_empty(), last.is_empty()) {
        // `bytes=-n`: the last n bytes; a suffix longer than the file is the whole file.
        (true, false) => match number(last) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(suffix) => RangeRequest::Part {
                start: size.saturating_sub(suffix),
                end: size - 1,
            },
        },
        // `bytes=a-`: from a to the end.
        (false, true) => match number(first) {
            None => RangeRequest::Full,
            Some(start) if start >= size => RangeRequest::Unsatisfiable,
            Some(start) => RangeRequest::Part {
                start,
                end: size - 1,
            },
        },
        // `bytes=a-b`: an end past the file is clipped to it (§14.1.2).
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    RangeRequest::Unsatisfiable
                } else {
                    RangeRequest::Part {
                        start,
                        end: end.min(size - 1),
                    }
                }
            }
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

/// The content codings of precompressed siblings, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    pub const PREFERRED: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    /// The `Content-Encoding` value.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The sibling file's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// Whether `Accept-Encoding` allows `coding` (RFC 9110 §12.5.3): listed by name (`x-gzip`
/// counts as `gzip`, §8.4.1.3) or matched by `*`, with a non-zero weight; an explicit entry
/// wins over `*`. Without the header, only the identity coding is assumed acceptable.
pub fn accepts(accept_encoding: Option<&[u8]>, coding: Coding) -> bool {
    let Some(value) = accept_encoding else {
        return false;
    };
    let mut star = None;
    for member in value.split(|&b| b == b',') {
        let mut parts = member.split(|&b| b == b';');
        let name = trim_ows(parts.next().unwrap_or_default());
        let mut weight_ok = true;
        for parameter in parts {
            let parameter = trim_ows(parameter);
            if parameter.len() >= 2 && parameter[..2].eq_ignore_ascii_case(b"q=") {
                let weight = std::str::from_utf8(&parameter[2..])
                    .ok()
                    .and_then(|q| q.trim().parse::<f32>().ok());
                weight_ok = weight.is_some_and(|q| q > 0.0);
            }
        }
        let named = name.eq_ignore_ascii_case(coding.name().as_bytes())
            || (coding == Coding::Gzip && name.eq_ignore_ascii_case(b"x-gzip"));
        if named {
            return weight_ok;
        }
        if name == b"*" {
            star = Some(weight_ok);
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Part { start, end }
    }

    #[test]
    fn ranges_at_the_edges() {
        assert_eq!(parse_range(b"bytes=0-0", 10), part(0, 0));
        assert_eq!(parse_range(b"bytes=9-9", 10), part(9, 9));
        assert_eq!(parse_range(b"bytes=9-", 10), part(9, 9));
        assert_eq!(parse_range(b"bytes=0-", 10), part(0, 9));
        assert_eq!(parse_range(b"bytes=5-100", 10), part(5, 9));
        assert_eq!(parse_range(b"bytes=-1", 10), part(9, 9));
        assert_eq!(parse_range(b"bytes=-10", 10), part(0, 9));
        assert_eq!(parse_range(b"bytes=-100", 10), part(0, 9));
        assert_eq!(parse_range(b"Bytes = 2-3", 10), part(2, 3));
        assert_eq!(parse_range(b"bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=10-20", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-5", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn unusable_ranges_mean_the_whole_file() {
        for value in [
            &b"bytes=5-2"[..],
            b"bytes=0-1,3-4",
            b"items=0-1",
            b"bytes=",
            b"bytes=-",
            b"bytes=a-b",
            b"bytes=+1-2",
            b"bytes 0-1",
            b"bytes=99999999999999999999999-",
        ] {
            assert_eq!(
                parse_range(value, 10),
                RangeRequest::Full,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn if_none_match_takes_precedence() {
        let modified = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let validators = Validators::new(10, Some(modified), None);
        let etag = validators.etag.clone();
        let later = httpdate::fmt_http_date(modified + Duration::from_secs(10));
        let earlier = httpdate::fmt_http_date(modified - Duration::from_secs(10));
        assert!(not_modified(&validators, Some(etag.as_bytes()), None));
        assert!(not_modified(
            &validators,
            Some(format!("\"x\", W/{etag}").as_bytes()),
            None
        ));
        assert!(not_modified(&validators, Some(b"*"), None));
        assert!(!not_modified(
            &validators,
            Some(b"\"other\""),
            Some(later.as_bytes())
        ));
        assert!(not_modified(&validators, None, Some(later.as_bytes())));
        assert!(!not_modified(&validators, None, Some(earlier.as_bytes())));
        assert!(!not_modified(&validators, None, Some(b"not a date")));
        assert!(!not_modified(&validators, None, None));
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let modified = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let validators = Validators::new(10, Some(modified), None);
        assert!(if_range_holds(&validators, None));
        assert!(if_range_holds(
            &validators,
            Some(validators.etag.as_bytes())
        ));
        assert!(!if_range_holds(
            &validators,
            Some(format!("W/{}", validators.etag).as_bytes())
        ));
        assert!(!if_range_holds(&validators, Some(b"\"other\"")));
        assert!(if_range_holds(
            &validators,
            Some(httpdate::fmt_http_date(modified).as_bytes())
        ));
        let other = httpdate::fmt_http_date(modified + Duration::from_secs(1));
        assert!(!if_range_holds(&validators, Some(other.as_bytes())));
    }

    #[test]
    fn variants_have_their_own_tags() {
        let modified = Some(UNIX_EPOCH + Duration::from_nanos(1_500_000_000));
        let identity = Validators::new(10, modified, None);
        let brotli = Validators::new(10, modified, Some("br"));
        assert_ne!(identity.etag, brotli.etag);
        assert_eq!(identity.modified, Some(UNIX_EPOCH + Duration::from_secs(1)));
    }

    #[test]
    fn accept_encoding() {
        assert!(accepts(Some(b"gzip, deflate, br"), Coding::Brotli));
        assert!(accepts(Some(b"gzip, deflate, br"), Coding::Gzip));
        assert!(!accepts(Some(b"gzip;q=0, br"), Coding::Gzip));
        assert!(accepts(Some(b"x-gzip"), Coding::Gzip));
        assert!(accepts(Some(b"*"), Coding::Brotli));
        assert!(!accepts(Some(b"*, br;q=0"), Coding::Brotli));
        assert!(!accepts(Some(b"identity"), Coding::Brotli));
        assert!(!accepts(None, Coding::Gzip));
        assert!(!accepts(Some(b"br;q=0.000"), Coding::Brotli));
        assert!(accepts(Some(b"BR;Q=0.5"), Coding::Brotli));
    }
}
