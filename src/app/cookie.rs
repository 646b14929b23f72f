//! `Set-Cookie` values (RFC 6265 §4.1), built from a name, a value and attributes, with
//! every part checked so that no cookie can break its header line or inject another.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::token::is_token;

/// The last second an HTTP date can name: 9999-12-31T23:59:59Z.
pub const MAX_EXPIRES: u64 = 253_402_300_799;

/// The attributes `HttpResponse.cookie()` understands, whatever their spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribute {
    Domain,
    Path,
    Expires,
    MaxAge,
    Secure,
    HttpOnly,
    SameSite,
    Partitioned,
}

impl Attribute {
    /// GodotTPD's spellings (`max-age`, `httpOnly`, `sameSite`) and Python's (`max_age`,
    /// `http_only`, `same_site`) alike: case, `-` and `_` are ignored.
    pub fn from_option_name(name: &str) -> Option<Attribute> {
        let folded: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match folded.as_str() {
            "domain" => Attribute::Domain,
            "path" => Attribute::Path,
            "expires" => Attribute::Expires,
            "maxage" => Attribute::MaxAge,
            "secure" => Attribute::Secure,
            "httponly" => Attribute::HttpOnly,
            "samesite" => Attribute::SameSite,
            "partitioned" => Attribute::Partitioned,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn parse(text: &str) -> Option<SameSite> {
        match text.to_ascii_lowercase().as_str() {
            "strict" => Some(SameSite::Strict),
            "lax" => Some(SameSite::Lax),
            "none" => Some(SameSite::None),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// One cookie to set.
#[derive(Clone, Debug, Default)]
pub struct CookieSpec {
    pub name: String,
    pub value: String,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub expires: Option<SystemTime>,
    pub max_age: Option<i64>,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<SameSite>,
    pub partitioned: bool,
}

/// RFC 6265 §4.1.1: `cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`
/// (no space, DQUOTE, comma, semicolon, backslash or control byte).
pub fn is_cookie_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`.
pub fn is_cookie_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let inner = match bytes {
        [b'"', inner @ .., b'"'] => inner,
        _ => bytes,
    };
    inner.iter().all(|&byte| is_cookie_octet(byte))
}

/// RFC 6265 §4.1.1: an attribute value is `*<any CHAR except CTLs or ";">`.
fn is_attribute_value(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| (0x20..0x7f).contains(&byte) && byte != b';')
}

impl CookieSpec {
    /// Renders the `Set-Cookie` field value, or says which part is invalid.
    pub fn render(&self) -> Result<String, String> {
        if !is_token(self.name.as_bytes()) {
            return Err(format!("cookie name {:?} is not an HTTP token", self.name));
        }
        if !is_cookie_value(&self.value) {
            return Err(format!(
                "cookie value {:?} has characters a cookie cannot hold (space, quote, comma, semicolon, backslash, control or non-ASCII); encode it first",
                self.value
            ));
        }
        let mut out = format!("{}={}", self.name, self.value);
        for (label, value) in [("Domain", &self.domain), ("Path", &self.path)] {
            if let Some(value) = value {
                if !is_attribute_value(value) || value.is_empty() {
                    return Err(format!(
                        "cookie {label} {value:?} is empty or has a control character or ';'"
                    ));
                }
                let _ = write!(out, "; {label}={value}");
            }
        }
        if let Some(expires) = self.expires {
            // httpdate panics outside 1970..=9999. `expiry_time` keeps what Python passes in
            // range; this keeps every other caller from panicking too.
            let seconds = expires
                .duration_since(UNIX_EPOCH)
                .map_or(u64::MAX, |since| since.as_secs());
            if seconds > MAX_EXPIRES {
                return Err("cookie expires is out of range (1970 to 9999)".to_owned());
            }
            let _ = write!(out, "; Expires={}", httpdate::fmt_http_date(expires));
        }
        if let Some(max_age) = self.max_age {
            let _ = write!(out, "; Max-Age={max_age}");
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(same_site) = self.same_site {
            let _ = write!(out, "; SameSite={}", same_site.as_str());
        }
        if self.partitioned {
            // CHIPS (draft-cutler-httpbis-partitioned-cookies §2.1): a cookie with
            // `Partitioned` but not `Secure` is rejected by the browser; refuse to send one.
            if !self.secure {
                return Err("cookie option partitioned needs secure (browsers drop a \
                            Partitioned cookie without Secure)"
                    .to_owned());
            }
            out.push_str("; Partitioned");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn renders_every_attribute() {
        let spec = CookieSpec {
            name: "id".into(),
            value: "abc".into(),
            domain: Some("example.com".into()),
            path: Some("/".into()),
            expires: Some(UNIX_EPOCH + Duration::from_secs(784111777)),
            max_age: Some(60),
            secure: true,
            http_only: true,
            same_site: Some(SameSite::Lax),
            partitioned: false,
        };
        assert_eq!(
            spec.render().unwrap(),
            "id=abc; Domain=example.com; Path=/; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Max-Age=60; Secure; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn refuses_what_would_break_the_line() {
        let bad = |name: &str, value: &str| CookieSpec {
            name: name.into(),
            value: value.into(),
            ..Default::default()
        };
        assert!(bad("a b", "v").render().is_err());
        assert!(bad("a", "v;w").render().is_err());
        assert!(bad("a", "v\r\nSet-Cookie: x=y").render().is_err());
        assert!(bad("a", "v w").render().is_err());
        assert!(bad("a", "\"quoted\"").render().is_ok());
        let path = CookieSpec {
            path: Some("/;x".into()),
            ..bad("a", "b")
        };
        assert!(path.render().is_err());
    }

    #[test]
    fn refuses_expiry_out_of_range_instead_of_panicking() {
        // Found while writing the encode_response fuzz target: httpdate panics past year 9999.
        let at = |time| CookieSpec {
            expires: Some(time),
            ..CookieSpec {
                name: "a".into(),
                ..Default::default()
            }
        };
        let last = at(UNIX_EPOCH + Duration::from_secs(MAX_EXPIRES))
            .render()
            .unwrap();
        assert!(
            last.ends_with("; Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
            "{last}"
        );
        assert!(at(UNIX_EPOCH + Duration::from_secs(MAX_EXPIRES + 1))
            .render()
            .is_err());
        assert!(at(UNIX_EPOCH - Duration::from_secs(1)).render().is_err());
    }

    #[test]
    fn option_spellings() {
        assert_eq!(
            Attribute::from_option_name("max-age"),
            Some(Attribute::MaxAge)
        );
        assert_eq!(
            Attribute::from_option_name("max_age"),
            Some(Attribute::MaxAge)
        );
        assert_eq!(
            Attribute::from_option_name("httpOnly"),
            Some(Attribute::HttpOnly)
        );
        assert_eq!(
            Attribute::from_option_name("same_site"),
            Some(Attribute::SameSite)
        );
        assert_eq!(Attribute::from_option_name("color"), None);
    }
}
