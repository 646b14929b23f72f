//! The limits a server enforces on every client, with production defaults.
//!
//! Each is a keyword argument of `HttpServer`; the values below are what a server exposed to
//! the internet should ship with (they match or undercut nginx's and hyper's defaults).

use std::time::Duration;

/// Hard ceiling on `max_headers`: the parser's header array lives on the stack.
pub const MAX_HEADERS_CEILING: usize = 256;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest request line (method, target, version) before 414 URI Too Long.
    pub max_request_line: usize,
    /// Largest request head (request line plus header section) before 431.
    pub max_head_size: usize,
    /// Most header fields in one request before 431.
    pub max_headers: usize,
    /// Largest request body before 413 Content Too Large.
    pub max_body_size: u64,
    /// Time to receive a whole request head, counted from its first byte: 408 after it.
    pub header_timeout: Duration,
    /// Longest stall while receiving a body: 408 after it.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub keepalive_timeout: Duration,
    /// Longest stall while the client does not read its response; then the connection closes.
    pub write_timeout: Duration,
    /// Slowest average rate, in bytes per second, at which a body may arrive once
    /// `body_rate_grace` has passed since it started (0: no minimum). A body dribbled a
    /// byte at a time never stalls for `body_timeout`, yet holds its connection for as long
    /// as the client likes; this cuts it (408), as Apache's `mod_reqtimeout` `MinRate` does.
    pub min_body_rate: u64,
    /// How long a body may arrive at any rate before `min_body_rate` applies.
    pub body_rate_grace: Duration,
    /// Most open connections; one more gets 503 and is closed.
    pub max_connections: usize,
    /// How long `stop()` waits for in-flight requests before it closes their connections.
    pub shutdown_grace: Duration,
    /// Most bytes of a streamed response queued for a slow client before the handler's
    /// `write()` waits (and an `EventHub` drops the subscriber).
    pub stream_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_head_size: 16 * 1024,
            max_headers: 100,
            max_body_size: 10 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            min_body_rate: 1024,
            body_rate_grace: Duration::from_secs(5),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
            stream_buffer: 256 * 1024,
        }
    }
}
