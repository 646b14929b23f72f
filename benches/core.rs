//! Micro-benchmarks of the pure parts of the core (criterion): parsing a browser request,
//! decoding a chunked body, encoding responses, routing. Run with `cargo bench --bench core`.
//!
//! Each group reports time per operation and a throughput: bytes for parsing, decoding and
//! encoding (the bytes read or produced), elements (requests routed) for routing.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use godottpd::chunked::ChunkedDecoder;
use godottpd::cookie::{CookieSpec, SameSite};
use godottpd::encode::{encode_simple, HeadEncoder, Persistence, ServerHeaders};
use godottpd::limits::Limits;
use godottpd::parse::parse_head;
use godottpd::routes::{Pattern, RequestPath, RouteTable};

/// A request as a desktop browser sends it: 15 header fields, about 700 bytes.
const BROWSER_REQUEST: &[u8] = b"GET /api/v1/users/42/posts?page=2&sort=desc HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/api/v1/users/42\r\n\
Connection: keep-alive\r\n\
Cookie: session=8f2b1c3d4e5f6a7b8c9d0e1f2a3b4c5d; theme=dark; lang=en; _ga=GA1.2.123456789.1700000000\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-User: ?1\r\n\
Priority: u=0, i\r\n\
Cache-Control: max-age=0\r\n\
\r\n";

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    // The buffer is filled outside the timed part; parse_head consumes it.
    let mut buffer = BytesMut::with_capacity(4096);
    group.bench_function("browser_request_15_headers", |b| {
        b.iter(|| {
            buffer.clear();
            buffer.extend_from_slice(BROWSER_REQUEST);
            let head = parse_head(&mut buffer, &limits).unwrap().unwrap();
            black_box(head);
        })
    });
    group.finish();
}

/// A 16 KiB body sent as 16 chunks of 1 KiB, each with its size line, then the last chunk.
fn chunked_body() -> (Vec<u8>, usize) {
    let mut wire = Vec::new();
    let mut payload = 0;
    for index in 0..16u8 {
        let data = vec![b'a' + index; 1024];
        wire.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        wire.extend_from_slice(&data);
        wire.extend_from_slice(b"\r\n");
        payload += data.len();
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    (wire, payload)
}

fn chunked(c: &mut Criterion) {
    let (wire, payload) = chunked_body();
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("decode_16x1KiB", |b| {
        b.iter_batched_ref(
            || (BytesMut::from(&wire[..]), Vec::with_capacity(payload)),
            |(input, body)| {
                let mut decoder = ChunkedDecoder::default();
                assert!(decoder.decode(input, body, u64::MAX).unwrap());
                black_box(body.len());
            },
            BatchSize::SmallInput,
        )
    });
    // The same body as a client sends it over a slow link: a few bytes per read.
    group.bench_function("decode_16x1KiB_in_64B_reads", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(payload),
            |body| {
                let mut decoder = ChunkedDecoder::default();
                let mut input = BytesMut::with_capacity(128);
                let mut done = false;
                for piece in wire.chunks(64) {
                    input.extend_from_slice(piece);
                    done = decoder.decode(&mut input, body, u64::MAX).unwrap();
                }
                assert!(done);
                black_box(body.len());
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let defaults = ServerHeaders {
        server: b"GodotTPD",
        extra_lines: b"",
        persistence: Persistence::KeepAlive,
    };
    let mut out = Vec::with_capacity(4096);
    encode_simple(
        &mut out,
        200,
        &defaults,
        &[],
        b"text/plain; charset=utf-8",
        b"Hello, World!",
        false,
    );
    let small_len = out.len();

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(small_len as u64));
    group.bench_function("small_response", |b| {
        b.iter(|| {
            out.clear();
            encode_simple(
                &mut out,
                black_box(200),
                &defaults,
                &[],
                b"text/plain; charset=utf-8",
                black_box(b"Hello, World!"),
                false,
            );
            black_box(out.len());
        })
    });

    // What a handler that sets 10 headers and 3 cookies costs: the cookies are rendered
    // (and validated) from their specs per response, as `HttpResponse.cookie()` does.
    let headers: [(&[u8], &[u8]); 10] = [
        (b"Content-Type", b"application/json"),
        (b"Cache-Control", b"no-store, max-age=0"),
        (b"X-Request-Id", b"7f3c2a9e-5b1d-4c8e-9f0a-1b2c3d4e5f60"),
        (b"X-Frame-Options", b"DENY"),
        (b"X-Content-Type-Options", b"nosniff"),
        (b"Referrer-Policy", b"strict-origin-when-cross-origin"),
        (
            b"Strict-Transport-Security",
            b"max-age=63072000; includeSubDomains",
        ),
        (b"Vary", b"Accept-Encoding, Origin"),
        (b"ETag", b"\"33a64df551425fcc55e4d42a148795d9f25f89d4\""),
        (b"Last-Modified", b"Wed, 21 Oct 2015 07:28:00 GMT"),
    ];
    let cookies = [
        CookieSpec {
            name: "session".into(),
            value: "8f2b1c3d4e5f6a7b8c9d0e1f2a3b4c5d".into(),
            path: Some("/".into()),
            http_only: true,
            secure: true,
            same_site: Some(SameSite::Lax),
            ..Default::default()
        },
        CookieSpec {
            name: "theme".into(),
            value: "dark".into(),
            path: Some("/".into()),
            max_age: Some(31_536_000),
            ..Default::default()
        },
        CookieSpec {
            name: "csrf".into(),
            value: "a1b2c3d4e5f6".into(),
            domain: Some("example.com".into()),
            secure: true,
            same_site: Some(SameSite::Strict),
            ..Default::default()
        },
    ];
    let body = br#"{"id":42,"name":"Ada","posts":[1,2,3]}"#;
    let encode_full = |out: &mut Vec<u8>| {
        let mut head = HeadEncoder::new(out, 200);
        for (name, value) in &headers {
            head.header(name, value);
        }
        for cookie in &cookies {
            head.header(b"Set-Cookie", cookie.render().unwrap().as_bytes());
        }
        head.finish(&defaults, b"text/html; charset=utf-8", body.len() as u64);
        out.extend_from_slice(body);
    };
    out.clear();
    encode_full(&mut out);
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("10_headers_3_cookies", |b| {
        b.iter(|| {
            out.clear();
            encode_full(&mut out);
            black_box(out.len());
        })
    });
    group.finish();
}

/// 50 routes of a typical REST API: literals, parameters, and a few regular expressions.
fn route_table() -> RouteTable<usize> {
    let resources = [
        "users", "posts", "comments", "tags", "orders", "products", "carts", "invoices", "teams",
        "projects",
    ];
    let mut paths = Vec::new();
    for resource in resources {
        paths.push(format!("/api/v1/{resource}"));
        paths.push(format!("/api/v1/{resource}/:id"));
        paths.push(format!("/api/v1/{resource}/:id/history"));
        paths.push(format!("/api/v1/{resource}/:id/owner/:owner"));
    }
    for index in 0..7 {
        paths.push(format!("/pages/section{index}/about"));
    }
    paths.push(r"^/archive/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})$".into());
    paths.push(r"^/download/(?P<file>[a-z0-9_.-]+)\.zip$".into());
    paths.push("/health".into());
    assert_eq!(paths.len(), 50);
    paths
        .iter()
        .enumerate()
        .fold(RouteTable::default(), |table, (index, path)| {
            table.with_route(Pattern::compile(path, false).unwrap(), index)
        })
}

fn route(c: &mut Criterion) {
    let table = route_table();
    let mut group = c.benchmark_group("route");
    // (name, path, expected route index): first, middle, last, a regex and a miss.
    let cases: [(&str, &str, Option<usize>); 5] = [
        ("first_literal", "/api/v1/users", Some(0)),
        ("middle_parameter", "/api/v1/orders/1234/history", Some(18)),
        ("late_literal", "/health", Some(49)),
        ("regex", "/archive/2024/05", Some(47)),
        ("miss_404", "/nothing/here/at/all", None),
    ];
    group.throughput(Throughput::Elements(1));
    for (name, raw, expected) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let path = RequestPath::new(black_box(raw)).unwrap();
                let found = table
                    .find(&path)
                    .map(|(index, captures)| (*index, captures.parameters.len()));
                assert_eq!(found.map(|f| f.0), expected);
                black_box(found);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse, chunked, encode, route);
criterion_main!(benches);
