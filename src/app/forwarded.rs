//! Who the client is behind reverse proxies: `trusted_proxies`, RFC 7239 `Forwarded` and
//! the de-facto `X-Forwarded-For` / `-Proto` / `-Host`.
//!
//! Anyone can send these headers, so they are believed only when the connection comes from
//! a trusted proxy, and then read from the right: each proxy appends the address it received
//! the request from, so the rightmost address that is not a trusted proxy is the client
//! (RFC 7239 §5.2: "the first element in this list ... the client"; §8.1: a proxy "cannot
//! validate the header field's value" set by anyone before it). Malformed values are
//! ignored, as if absent. Pure: the Python layer calls [`resolve`] lazily, when a handler
//! reads `request.client`, `request.scheme` or `request.host`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::app::exchange::Scheme;
use crate::http::parse::RequestHead;
use crate::http::token::is_token;

/// The proxies whose forwarding headers are believed: networks, or everyone (`"*"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    all: bool,
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses `"*"`, addresses (`"127.0.0.1"`, `"::1"`) and networks (`"10.0.0.0/8"`);
    /// the error is the entry that is none of those.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut trusted = TrustedProxies::default();
        for entry in entries {
            let text = entry.trim();
            if text == "*" {
                trusted.all = true;
            } else if let Ok(network) = IpNet::from_str(text) {
                trusted.networks.push(network.trunc());
            } else if let Ok(address) = IpAddr::from_str(text) {
                trusted.networks.push(IpNet::from(address));
            } else {
                return Err(entry.to_owned());
            }
        }
        Ok(trusted)
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.networks.is_empty()
    }

    /// Whether `address` is a trusted proxy (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        if self.all {
            return true;
        }
        let address = address.to_canonical();
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }
}

/// How the server sits behind proxies: the `HttpServer` arguments `trusted_proxies` and
/// `proxy_protocol`.
#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    pub trusted: TrustedProxies,
    /// Every connection starts with a PROXY protocol header (`http::proxy_protocol`).
    pub proxy_protocol: bool,
}

/// `http` or `https`, as a trusted proxy reports the scheme the client used.
fn parse_scheme(value: &[u8]) -> Option<Scheme> {
    if value.eq_ignore_ascii_case(b"http") {
        Some(Scheme::Http)
    } else if value.eq_ignore_ascii_case(b"https") {
        Some(Scheme::Https)
    } else {
        None
    }
}

/// What the trusted proxies say about a request; `None` fields leave the connection's own
/// facts (socket peer, the server's scheme, the `Host` header) in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client; port 0 when the proxy did not say.
    pub client: Option<SocketAddr>,
    pub scheme: Option<Scheme>,
    pub host: Option<String>,
    /// Why a forwarding header present was ignored, for a DEBUG log line.
    pub ignored: Option<&'static str>,
}

/// One hop of the chain: the node a proxy received the request from, and what it saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Hop {
    /// `None`: `unknown` or an obfuscated identifier (RFC 7239 §6.2, §6.3).
    node: Option<SocketAddr>,
    scheme: Option<Scheme>,
    host: Option<String>,
}

/// Resolves the client, scheme and host of a request that reached us from `peer`.
///
/// `Forwarded` is used when present and well-formed, else `X-Forwarded-For` (with
/// `X-Forwarded-Proto` and `X-Forwarded-Host`). Walking the hops from the right, trusted
/// proxies are skipped; the first untrusted node is the client, and the scheme and host are
/// those its proxy recorded. If every hop is trusted, the leftmost is the client. A node
/// that is `unknown` or obfuscated ends the walk: nothing to its left can be checked.
pub fn resolve(peer: IpAddr, trusted: &TrustedProxies, head: &RequestHead) -> Forwarded {
    if trusted.is_empty() || !trusted.contains(peer) {
        return Forwarded::default();
    }
    let mut ignored = None;
    let hops = match forwarded_hops(head) {
        Some(Ok(hops)) => Some(hops),
        Some(Err(why)) => {
            ignored = Some(why);
            None
        }
        None => None,
    };
    let hops = match hops {
        Some(hops) => hops,
        None => match x_forwarded_hops(head) {
            Ok(Some(hops)) => hops,
            Ok(None) => {
                return Forwarded {
                    ignored,
                    ..Forwarded::default()
                }
            }
            Err(why) => {
                return Forwarded {
                    ignored: Some(why),
                    ..Forwarded::default()
                }
            }
        },
    };
    let mut chosen: Option<&Hop> = None;
    for hop in hops.iter().rev() {
        let Some(node) = hop.node else {
            break;
        };
        chosen = Some(hop);
        if !trusted.contains(node.ip()) {
            break;
        }
    }
    let Some(hop) = chosen else {
        return Forwarded {
            ignored,
            ..Forwarded::default()
        };
    };
    Forwarded {
        client: hop.node,
        scheme: hop.scheme,
        host: hop.host.clone(),
        ignored,
    }
}

/// Splits `value` on `separator` outside quoted strings (RFC 9110 §5.6.4).
fn split_outside_quotes(value: &[u8], separator: u8) -> Result<Vec<&[u8]>, &'static str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (at, &byte) in value.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if byte == separator && !quoted {
            parts.push(&value[start..at]);
            start = at + 1;
        }
    }
    if quoted {
        return Err("unterminated quoted string");
    }
    parts.push(&value[start..]);
    Ok(parts)
}

fn trim(value: &[u8]) -> &[u8] {
    crate::http::token::trim_ows(value)
}

/// `token / quoted-string` (RFC 7239 §4), unquoted.
fn unquote(value: &[u8]) -> Result<Vec<u8>, &'static str> {
    if let Some(inner) = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
    {
        let mut out = Vec::with_capacity(inner.len());
        let mut bytes = inner.iter();
        while let Some(&byte) = bytes.next() {
            if byte == b'\\' {
                out.push(*bytes.next().ok_or("bad quoted-pair")?);
            } else {
                out.push(byte);
            }
        }
        return Ok(out);
    }
    if is_token(value) {
        Ok(value.to_vec())
    } else {
        Err("a Forwarded value is neither a token nor a quoted string")
    }
}

/// RFC 7239 §6: `node = nodename [ ":" node-port ]`; `nodename = IPv4address /
/// "[" IPv6address "]" / "unknown" / obfnode`. `Ok(None)` for `unknown` and obfuscated
/// names, which identify no address.
fn parse_node(value: &[u8]) -> Result<Option<SocketAddr>, &'static str> {
    let text = std::str::from_utf8(value).map_err(|_| "a node is not ASCII")?;
    let obfuscated = |s: &str| {
        s.len() > 1
            && s.starts_with('_')
            && s[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    };
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or("unclosed [ in a node")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after ] in a node")?),
        };
        let address: std::net::Ipv6Addr = address.parse().map_err(|_| "bad IPv6 node")?;
        (Some(IpAddr::V6(address)), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        if name.eq_ignore_ascii_case("unknown") || obfuscated(name) {
            (None, port)
        } else {
            let address: std::net::Ipv4Addr = name.parse().map_err(|_| "bad IPv4 node")?;
            (Some(IpAddr::V4(address)), port)
        }
    };
    let port = match port {
        None => 0,
        Some(port) if obfuscated(port) => 0,
        Some(port) => parse_port(port)?,
    };
    Ok(name.map(|address| SocketAddr::new(address, port)))
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad port in a node");
    }
    text.parse().map_err(|_| "port out of range in a node")
}

/// RFC 9110 §7.2 `Host = uri-host [ ":" port ]`: a reg-name, IPv4 or `[IPv6]`, and digits.
fn valid_host(host: &[u8]) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let (name, port) = if host[0] == b'[' {
        let Some(close) = memchr::memchr(b']', host) else {
            return false;
        };
        let inner = std::str::from_utf8(&host[1..close]).unwrap_or("");
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (&host[..0], &host[close + 1..])
    } else {
        match memchr::memrchr(b':', host) {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, &host[..0]),
        }
    };
    let name_ok = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
    let port_ok = port.is_empty()
        || (port[0] == b':' && port.len() <= 6 && port[1..].iter().all(u8::is_ascii_digit));
    name_ok && port_ok
}

/// The hops of every `Forwarded` field line, left to right; `None` when there is none.
fn forwarded_hops(head: &RequestHead) -> Option<Result<Vec<Hop>, &'static str>> {
    let mut lines = head.header_values("forwarded").peekable();
    lines.peek()?;
    let mut hops = Vec::new();
    for line in lines {
        let elements = match split_outside_quotes(line, b',') {
            Ok(elements) => elements,
            Err(why) => return Some(Err(why)),
        };
        for element in elements {
            match parse_element(trim(element)) {
                Ok(hop) => hops.push(hop),
                Err(why) => return Some(Err(why)),
            }
        }
    }
    Some(Ok(hops))
}

/// One `forwarded-element`: `;`-separated `name=value` pairs, each name at most once
/// (RFC 7239 §4: "each parameter MUST NOT occur more than once per forwarded-element").
fn parse_element(element: &[u8]) -> Result<Hop, &'static str> {
    let mut hop = Hop::default();
    let mut seen_for = false;
    let mut seen = [false; 3];
    for pair in split_outside_quotes(element, b';')? {
        let pair = trim(pair);
        if pair.is_empty() {
            continue;
        }
        let equals = memchr::memchr(b'=', pair).ok_or("a Forwarded pair without =")?;
        let (name, value) = (&pair[..equals], unquote(&pair[equals + 1..])?);
        if !is_token(name) {
            return Err("a Forwarded parameter name is not a token");
        }
        let index = if name.eq_ignore_ascii_case(b"for") {
            seen_for = true;
            hop.node = parse_node(&value)?;
            0
        } else if name.eq_ignore_ascii_case(b"proto") {
            hop.scheme = Some(parse_scheme(&value).ok_or("Forwarded proto is not http(s)")?);
            1
        } else if name.eq_ignore_ascii_case(b"host") {
            if !valid_host(&value) {
                return Err("Forwarded host is not a host");
            }
            hop.host = Some(String::from_utf8_lossy(&value).into_owned());
            2
        } else {
            // `by` and extensions: not needed to find the client.
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err("a Forwarded parameter repeated in one element");
        }
    }
    if !seen_for {
        // An element without `for` says nothing about who sent it: the chain is broken.
        hop.node = None;
    }
    Ok(hop)
}

/// The comma-separated items of every line of `name`, left to right.
fn list_items<'a>(head: &'a RequestHead, name: &'a str) -> Vec<&'a [u8]> {
    head.header_values(name)
        .flat_map(|line| line.split(|&b| b == b','))
        .map(trim)
        .collect()
}

/// The hops of `X-Forwarded-For`, with `-Proto` and `-Host` matched to them: one value for
/// every hop, or a single value that applies to the nearest hop only when the counts
/// differ (the common case of one proxy that sets them).
fn x_forwarded_hops(head: &RequestHead) -> Result<Option<Vec<Hop>>, &'static str> {
    let addresses = list_items(head, "x-forwarded-for");
    if addresses.is_empty() {
        return Ok(None);
    }
    let mut hops = Vec::with_capacity(addresses.len());
    for address in &addresses {
        // X-Forwarded-For holds bare addresses; some proxies add a port or IPv6 brackets.
        let node = match std::str::from_utf8(address)
            .ok()
            .and_then(|text| text.parse::<IpAddr>().ok())
        {
            Some(ip) => Some(SocketAddr::new(ip, 0)),
            None => parse_node(address).map_err(|_| "X-Forwarded-For holds a non-address")?,
        };
        hops.push(Hop {
            node,
            ..Hop::default()
        });
    }
    let protos = list_items(head, "x-forwarded-proto");
    let hosts = list_items(head, "x-forwarded-host");
    let count_hops = hops.len();
    let last = count_hops - 1;
    let spread = |count: usize, index: usize| -> Option<usize> {
        if count == count_hops {
            Some(index)
        } else if count == 1 && index == last {
            Some(0)
        } else {
            None
        }
    };
    for (index, hop) in hops.iter_mut().enumerate() {
        if let Some(at) = spread(protos.len(), index) {
            hop.scheme = Some(parse_scheme(protos[at]).ok_or("X-Forwarded-Proto is not http(s)")?);
        }
        if let Some(at) = spread(hosts.len(), index) {
            if !valid_host(hosts[at]) {
                return Err("X-Forwarded-Host is not a host");
            }
            hop.host = Some(String::from_utf8_lossy(hosts[at]).into_owned());
        }
    }
    Ok(Some(hops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::limits::Limits;
    use crate::http::parse::parse_head;

    fn head(fields: &str) -> RequestHead {
        let raw = format!("GET / HTTP/1.1\r\nHost: example.com\r\n{fields}\r\n");
        let mut buffer = bytes::BytesMut::from(raw.as_bytes());
        parse_head(&mut buffer, &Limits::default())
            .unwrap()
            .unwrap()
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries.iter().copied()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn client(forwarded: &Forwarded) -> Option<String> {
        forwarded.client.map(|address| address.ip().to_string())
    }

    #[test]
    fn trusted_entries_parse_or_name_the_bad_one() {
        let list = trusted(&["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]);
        assert!(list.contains(ip("127.0.0.1")));
        assert!(list.contains(ip("::ffff:127.0.0.1")), "mapped IPv4");
        assert!(list.contains(ip("10.200.0.3")));
        assert!(list.contains(ip("fd12::1")));
        assert!(!list.contains(ip("127.0.0.2")));
        assert!(!list.contains(ip("11.0.0.1")));
        assert!(trusted(&["*"]).contains(ip("203.0.113.9")));
        assert!(trusted(&[]).is_empty());
        assert_eq!(
            TrustedProxies::parse(["10.0.0.1", "10.0.0.0/33"]),
            Err("10.0.0.0/33".to_owned())
        );
        assert_eq!(
            TrustedProxies::parse(["localhost"]),
            Err("localhost".into())
        );
        assert_eq!(TrustedProxies::parse([""]), Err("".into()));
    }

    #[test]
    fn untrusted_peers_change_nothing() {
        let h = head("X-Forwarded-For: 1.2.3.4\r\nForwarded: for=5.6.7.8;proto=https\r\n");
        assert_eq!(
            resolve(ip("127.0.0.1"), &trusted(&[]), &h),
            Forwarded::default()
        );
        let list = trusted(&["10.0.0.0/8"]);
        assert_eq!(resolve(ip("127.0.0.1"), &list, &h), Forwarded::default());
    }

    #[test]
    fn x_forwarded_for_rightmost_untrusted() {
        let list = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        let h = head("X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.1.1\r\n");
        assert_eq!(
            client(&resolve(ip("127.0.0.1"), &list, &h)).as_deref(),
            Some("198.51.100.7")
        );
        // Spread over two lines: the same list (RFC 9110 §5.3).
        let h = head("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.7, 10.1.1.1\r\n");
        assert_eq!(
            client(&resolve(ip("127.0.0.1"), &list, &h)).as_deref(),
            Some("198.51.100.7")
        );
        // Every hop trusted: the leftmost.
        let h = head("X-Forwarded-For: 10.9.9.9, 10.1.1.1\r\n");
        assert_eq!(
            client(&resolve(ip("127.0.0.1"), &list, &h)).as_deref(),
            Some("10.9.9.9")
        );
        let h = head("X-Forwarded-For: 2001:db8::5\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example:8443\r\n");
        let resolved = resolve(ip("::1"), &trusted(&["*"]), &h);
        assert_eq!(client(&resolved).as_deref(), Some("2001:db8::5"));
        assert_eq!(resolved.scheme, Some(Scheme::Https));
        assert_eq!(resolved.host.as_deref(), Some("shop.example:8443"));
    }

    #[test]
    fn x_forwarded_proto_and_host_follow_the_chosen_hop() {
        let list = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        let h = head(
            "X-Forwarded-For: 203.0.113.1, 10.0.0.2\r\nX-Forwarded-Proto: https, http\r\nX-Forwarded-Host: a.example, b.internal\r\n",
        );
        let resolved = resolve(ip("127.0.0.1"), &list, &h);
        assert_eq!(client(&resolved).as_deref(), Some("203.0.113.1"));
        assert_eq!(resolved.scheme, Some(Scheme::Https));
        assert_eq!(resolved.host.as_deref(), Some("a.example"));
        // One proto for two hops: it belongs to the nearest proxy, not to the client's hop.
        let h = head("X-Forwarded-For: 203.0.113.1, 10.0.0.2\r\nX-Forwarded-Proto: https\r\n");
        assert_eq!(resolve(ip("127.0.0.1"), &list, &h).scheme, None);
    }

    #[test]
    fn forwarded_rfc_7239_examples() {
        let all = trusted(&["*"]);
        // RFC 7239 §4 and §7.1 examples.
        let h = head("Forwarded: for=\"_gazonk\"\r\n");
        assert_eq!(resolve(ip("127.0.0.1"), &all, &h).client, None);
        let h = head("Forwarded: For=\"[2001:db8:cafe::17]:4711\"\r\n");
        assert_eq!(
            resolve(ip("127.0.0.1"), &all, &h).client,
            Some("[2001:db8:cafe::17]:4711".parse().unwrap())
        );
        let h = head("Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n");
        let resolved = resolve(ip("127.0.0.1"), &all, &h);
        assert_eq!(client(&resolved).as_deref(), Some("192.0.2.60"));
        assert_eq!(resolved.scheme, Some(Scheme::Http));
        let list = trusted(&["127.0.0.1", "198.51.100.17"]);
        let h = head("Forwarded: for=192.0.2.43, for=198.51.100.17\r\n");
        assert_eq!(
            client(&resolve(ip("127.0.0.1"), &list, &h)).as_deref(),
            Some("192.0.2.43")
        );
        let h = head("Forwarded: for=192.0.2.43;proto=https;host=\"example.com:443\", for=198.51.100.17;proto=http\r\n");
        let resolved = resolve(ip("127.0.0.1"), &list, &h);
        assert_eq!(resolved.scheme, Some(Scheme::Https));
        assert_eq!(resolved.host.as_deref(), Some("example.com:443"));
        // `unknown` to the left of trusted hops: the walk stops at the last known node.
        let h = head("Forwarded: for=unknown, for=198.51.100.17\r\n");
        assert_eq!(
            client(&resolve(ip("127.0.0.1"), &list, &h)).as_deref(),
            Some("198.51.100.17")
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let all = trusted(&["*"]);
        let h = head("X-Forwarded-For: 1.1.1.1\r\nForwarded: for=2.2.2.2\r\n");
        assert_eq!(
            client(&resolve(ip("127.0.0.1"), &all, &h)).as_deref(),
            Some("2.2.2.2")
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        let all = trusted(&["*"]);
        for fields in [
            "X-Forwarded-For: not-an-address\r\n",
            "X-Forwarded-For: 1.2.3.4, 999.1.1.1\r\n",
            "Forwarded: for=[::1]\r\n",
            "Forwarded: for=\"unterminated\r\n",
            "Forwarded: for=1.2.3.4;for=5.6.7.8\r\n",
            "Forwarded: for\r\n",
            "Forwarded: for=1.2.3.4:99999\r\n",
            "Forwarded: for=1.2.3.4;proto=gopher\r\n",
            "Forwarded: for=1.2.3.4;host=\"a b\"\r\n",
        ] {
            let resolved = resolve(ip("127.0.0.1"), &all, &head(fields));
            assert_eq!(resolved.client, None, "{fields}");
            assert_eq!(resolved.scheme, None, "{fields}");
            assert!(resolved.ignored.is_some(), "{fields}");
        }
        let h = head("X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: ftp\r\n");
        assert_eq!(resolve(ip("127.0.0.1"), &all, &h).client, None);
        // A malformed Forwarded falls back to X-Forwarded-For.
        let h = head("Forwarded: for=\"[::1\"\r\nX-Forwarded-For: 1.2.3.4\r\n");
        let resolved = resolve(ip("127.0.0.1"), &all, &h);
        assert_eq!(client(&resolved).as_deref(), Some("1.2.3.4"));
        assert!(resolved.ignored.is_some());
    }

    #[test]
    fn the_host_asked_for() {
        assert_eq!(Some(head("").host()), Some(&b"example.com"[..]));
        let raw = b"GET http://other.example:81/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let mut buffer = bytes::BytesMut::from(&raw[..]);
        let absolute = parse_head(&mut buffer, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(Some(absolute.host()), Some(&b"other.example:81"[..]));
        let raw = b"GET http://bare.example HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut buffer = bytes::BytesMut::from(&raw[..]);
        let bare = parse_head(&mut buffer, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(Some(bare.host()), Some(&b"bare.example"[..]));
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        let mut buffer = bytes::BytesMut::from(&raw[..]);
        let none = parse_head(&mut buffer, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(none.host(), b"");
    }
}
