//! Response encoding from arbitrary handler input: status, headers, cookies, content type,
//! server identifier and CORS settings.
//!
//! The input goes through exactly the checks the Python layer applies (`response.rs`:
//! `check_status`, `check_header`, `check_content_type`, the server-identifier setter,
//! `CookieSpec::render` and the cookie-line check, `Cors::new`), then what was accepted is
//! encoded with `HeadEncoder` as `HttpResponse::finish` does. The bytes must parse back as
//! one well-formed HTTP/1.1 response carrying exactly what was accepted, with the framing the
//! server owns (one correct Content-Length, or none for 204/304).
//!
//! The header rule is the core's own `token::check_handler_header`, the function
//! `response.rs` calls, so the two cannot drift apart.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use godottpd::cookie::{CookieSpec, SameSite};
use godottpd::cors::Cors;
use godottpd::encode::{HeadEncoder, Persistence, ServerHeaders};
use godottpd::status::{forbids_body, reason_phrase};
use godottpd::token::{check_handler_header, is_field_value, is_token, list_contains, trim_ows};
use libfuzzer_sys::fuzz_target;

/// Names worth hitting often: the ones the server treats specially.
const KNOWN_NAMES: &[&str] = &[
    "Content-Type",
    "content-type",
    "Date",
    "Server",
    "Set-Cookie",
    "Connection",
    "connection",
    "Content-Length",
    "Transfer-Encoding",
    "transfer-encoding",
    "Location",
    "X-A",
];

/// Values worth hitting often: line breaks, injections, lists, whitespace.
const KNOWN_VALUES: &[&str] = &[
    "close",
    "keep-alive, Close",
    "text/html",
    " padded\t",
    "a\r\nSet-Cookie: x=y",
    "a\nb",
    "a\rb",
    "\0",
    "\x7f",
    "é",
    "",
    "5",
    "chunked",
];

#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Raw(String),
}

impl Text {
    fn name(&self) -> String {
        match self {
            Text::Known(i) => KNOWN_NAMES[usize::from(*i) % KNOWN_NAMES.len()].to_owned(),
            Text::Raw(text) => text.clone(),
        }
    }

    fn value(&self) -> String {
        match self {
            Text::Known(i) => KNOWN_VALUES[usize::from(*i) % KNOWN_VALUES.len()].to_owned(),
            Text::Raw(text) => text.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Cookie {
    name: Text,
    value: Text,
    domain: Option<String>,
    path: Option<String>,
    expires: Option<u64>,
    max_age: Option<i64>,
    secure: bool,
    http_only: bool,
    same_site: Option<u8>,
    partitioned: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    status: u16,
    persistence: u8,
    head_only: bool,
    content_type: Text,
    server: Option<String>,
    cors: Option<(Vec<String>, String, String, Option<String>, bool)>,
    headers: Vec<(Text, Text)>,
    cookies: Vec<Cookie>,
    body: Vec<u8>,
}

/// The rule `HttpResponse` applies to a handler's header (`token::check_handler_header`).
fn check_header<'v>(name: &str, value: &'v str) -> Option<&'v str> {
    check_handler_header(name, value).ok()
}

/// The attribute names `CookieSpec::render` writes after `name=value`.
const COOKIE_ATTRIBUTES: &[&str] =
    &["Domain", "Path", "Expires", "Max-Age", "Secure", "HttpOnly", "SameSite", "Partitioned"];

fn cookie_spec(cookie: &Cookie) -> CookieSpec {
    CookieSpec {
        name: cookie.name.name(),
        value: cookie.value.value(),
        domain: cookie.domain.clone(),
        path: cookie.path.clone(),
        // Whatever the Python layer lets through lies in 1970..=9999 (`expiry_time`); beyond
        // that `render` itself must refuse, not panic.
        expires: cookie.expires.map(|secs| UNIX_EPOCH + Duration::from_secs(secs % 300_000_000_000)),
        max_age: cookie.max_age,
        secure: cookie.secure,
        http_only: cookie.http_only,
        same_site: cookie.same_site.map(|i| [SameSite::Strict, SameSite::Lax, SameSite::None][usize::from(i % 3)]),
        partitioned: cookie.partitioned,
    }
}

/// A rendered cookie must be one field value holding `name=value` and then exactly the
/// attributes that were set: no `;` or line break smuggled in from any part.
fn check_rendered_cookie(spec: &CookieSpec, rendered: &str) {
    assert!(
        !rendered.is_empty() && is_field_value(rendered.as_bytes()),
        "rendered cookie {rendered:?} is no field value"
    );
    assert!(rendered.is_ascii(), "non-ASCII in a rendered cookie {rendered:?}");
    let mut parts = rendered.split("; ");
    assert_eq!(parts.next(), Some(format!("{}={}", spec.name, spec.value).as_str()));
    let expected = usize::from(spec.domain.is_some())
        + usize::from(spec.path.is_some())
        + usize::from(spec.expires.is_some())
        + usize::from(spec.max_age.is_some())
        + usize::from(spec.secure)
        + usize::from(spec.http_only)
        + usize::from(spec.same_site.is_some())
        + usize::from(spec.partitioned);
    assert_eq!(rendered.matches(';').count(), expected, "';' injected into cookie {rendered:?}");
    let mut seen = 0;
    for part in parts {
        let label = part.split('=').next().unwrap_or_default();
        assert!(COOKIE_ATTRIBUTES.contains(&label), "unknown attribute {label:?} in cookie {rendered:?}");
        seen += 1;
    }
    assert_eq!(seen, expected);
    if let Some(domain) = &spec.domain {
        assert!(rendered.contains(&format!("; Domain={domain}")));
    }
    if let Some(path) = &spec.path {
        assert!(rendered.contains(&format!("; Path={path}")));
    }
}

fn no_bare_cr_or_lf(head: &[u8]) {
    for (i, &byte) in head.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR at {i} in {:?}", String::from_utf8_lossy(head)),
            b'\n' => assert!(i > 0 && head[i - 1] == b'\r', "bare LF at {i} in {:?}", String::from_utf8_lossy(head)),
            0 => panic!("NUL in the head {:?}", String::from_utf8_lossy(head)),
            _ => {}
        }
    }
}

fuzz_target!(|input: Input| {
    // check_status: a final status, 200..=599.
    let status = 200 + input.status % 400;
    let persistence =
        [Persistence::KeepAlive, Persistence::KeepAliveHttp10, Persistence::Close][usize::from(input.persistence % 3)];

    // check_content_type; `send` may append a charset, which changes nothing here.
    let content_type = input.content_type.value();
    if !is_field_value(content_type.as_bytes()) {
        return;
    }
    // The server_identifier setter.
    let server = input.server.clone().unwrap_or_else(|| "GodotTPD".to_owned());
    if !is_field_value(server.as_bytes()) {
        return;
    }
    // enable_cors() renders its lines once; a request's Origin picks them.
    let mut extra_lines = Vec::new();
    if let Some((origins, methods, allowed_headers, origin, preflight)) = &input.cors {
        if let Ok(cors) = Cors::new(origins.clone(), methods.clone(), allowed_headers.clone()) {
            if let Some(lines) = cors.lines_for(origin.as_deref().map(str::as_bytes)) {
                extra_lines.extend_from_slice(&lines);
                if *preflight {
                    extra_lines.extend_from_slice(&cors.preflight_lines());
                }
            }
        }
    }

    // HttpResponse::finish: headers (Connection is the server's), then cookies.
    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut close = persistence == Persistence::Close;
    for (name, value) in &input.headers {
        let (name, value) = (name.name(), value.value());
        let Some(value) = check_header(&name, &value) else {
            continue;
        };
        if name.eq_ignore_ascii_case("connection") {
            close |= list_contains(value.as_bytes(), "close");
            continue;
        }
        accepted.push((name, value.to_owned()));
    }
    let mut cookies = Vec::new();
    for cookie in &input.cookies {
        let spec = cookie_spec(cookie);
        let Ok(rendered) = spec.render() else {
            continue;
        };
        check_rendered_cookie(&spec, &rendered);
        if !is_field_value(rendered.as_bytes()) || rendered.is_empty() {
            continue;
        }
        cookies.push(rendered);
    }
    let persistence = if close { Persistence::Close } else { persistence };

    let mut out = Vec::new();
    let mut head = HeadEncoder::new(&mut out, status);
    for (name, value) in &accepted {
        head.header(name.as_bytes(), value.as_bytes());
    }
    for cookie in &cookies {
        head.header(b"Set-Cookie", cookie.as_bytes());
    }
    let defaults = ServerHeaders { server: server.as_bytes(), extra_lines: &extra_lines, persistence };
    head.finish(&defaults, content_type.as_bytes(), input.body.len() as u64);
    let body_sent = !input.head_only && !forbids_body(status);
    if body_sent {
        out.extend_from_slice(&input.body);
    }

    // Parse it back as a client would.
    let mut storage = vec![httparse::EMPTY_HEADER; accepted.len() + cookies.len() + 64];
    let mut response = httparse::Response::new(&mut storage);
    let head_len = match response.parse(&out) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("response does not parse: {other:?}\n{:?}", String::from_utf8_lossy(&out)),
    };
    let head_bytes = &out[..head_len];
    no_bare_cr_or_lf(head_bytes);
    assert!(head_bytes.starts_with(b"HTTP/1.1 ") && head_bytes.ends_with(b"\r\n\r\n"));
    assert_eq!(response.version, Some(1));
    assert_eq!(response.code, Some(status));
    assert_eq!(response.reason, Some(reason_phrase(status)));

    let headers: Vec<(&str, &[u8])> = response.headers.iter().map(|h| (h.name, h.value)).collect();
    for (name, _) in &headers {
        assert!(is_token(name.as_bytes()), "header name {name:?} is not a token");
    }
    let count = |wanted: &str| headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case(wanted)).count();
    let values = |wanted: &str| -> Vec<&[u8]> {
        headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case(wanted)).map(|(_, value)| *value).collect()
    };

    // The handler's headers come first, in order, each exactly as accepted (Content-Type is
    // dropped where no body may follow), then its cookies.
    let mut expected: Vec<(&str, &str)> = accepted
        .iter()
        .filter(|(name, _)| !(forbids_body(status) && name.eq_ignore_ascii_case("content-type")))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    expected.extend(cookies.iter().map(|cookie| ("Set-Cookie", cookie.as_str())));
    assert!(headers.len() >= expected.len());
    for (i, (name, value)) in expected.iter().enumerate() {
        assert_eq!(headers[i].0, *name, "header {i} name");
        // Handler values were trimmed by check_header. A cookie may end in whitespace (an
        // attribute value of spaces is allowed), which the client drops as OWS: compare
        // trimmed, as RFC 6265 §5.2 makes user agents do anyway.
        assert_eq!(trim_ows(headers[i].1), trim_ows(value.as_bytes()), "header {name} value");
    }

    // The framing is the server's alone.
    assert_eq!(count("transfer-encoding"), 0);
    if forbids_body(status) {
        assert_eq!(count("content-length"), 0, "Content-Length on a {status}");
        assert_eq!(head_len, out.len(), "body bytes after a {status}");
    } else {
        let lengths = values("content-length");
        assert_eq!(lengths.len(), 1, "not exactly one Content-Length");
        assert_eq!(lengths[0], input.body.len().to_string().as_bytes());
        let sent = if body_sent { input.body.len() } else { 0 };
        assert_eq!(out.len() - head_len, sent);
        assert_eq!(&out[head_len..], if body_sent { &input.body[..] } else { &[][..] });
    }
    match persistence {
        Persistence::KeepAlive => assert_eq!(count("connection"), 0),
        Persistence::KeepAliveHttp10 => assert_eq!(values("connection"), vec![&b"keep-alive"[..]]),
        Persistence::Close => assert_eq!(values("connection"), vec![&b"close"[..]]),
    }
    assert_eq!(
        count("date"),
        1 + accepted.iter().filter(|(n, _)| n.eq_ignore_ascii_case("date")).count().saturating_sub(1)
    );
    let handler_types = accepted.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-type")).count();
    if forbids_body(status) {
        assert_eq!(count("content-type"), 0);
    } else if handler_types == 0 && !content_type.is_empty() {
        assert_eq!(count("content-type"), 1);
        assert_eq!(values("content-type")[0], trim_ows(content_type.as_bytes()));
    }
    assert_eq!(
        count("set-cookie"),
        cookies.len() + accepted.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).count()
    );
});
