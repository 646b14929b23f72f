//! The `Date` header value, formatted at most once per second per thread.
//!
//! RFC 9110 §6.6.1: an origin server with a clock "MUST generate a Date header field" in
//! its 2xx, 3xx and 4xx responses (and may in the others). Formatting an HTTP date costs far
//! more than copying 29 bytes, so each thread keeps the last rendering and the second it
//! belongs to; no lock and no atomic is touched on the hot path.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

struct CachedDate {
    second: u64,
    text: [u8; HTTP_DATE_LEN],
}

thread_local! {
    static CACHE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: u64::MAX, text: [b' '; HTTP_DATE_LEN] })
    };
}

/// Calls `write` with the current date as an IMF-fixdate.
pub fn with_http_date<R>(write: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        if cache.second != second {
            let rendered = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            if rendered.len() == HTTP_DATE_LEN {
                cache.text.copy_from_slice(rendered.as_bytes());
                cache.second = second;
            }
        }
        write(&cache.text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_parses_back_and_is_current() {
        let text = with_http_date(|date| String::from_utf8(date.to_vec()).unwrap());
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let drift = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(drift < Duration::from_secs(2));
    }
}
