//! The PROXY protocol header (versions 1 and 2), which HAProxy, nginx's `proxy_protocol`,
//! and cloud TCP load balancers send first on a connection to tell the server who the
//! client is (haproxy's `doc/proxy-protocol.txt`).
//!
//! Pure and bounded: [`parse`] looks at the bytes received so far and says whether a whole
//! header is there, how long it is and what it says, or that it cannot be one. It never
//! asks for more than [`V1_MAX_LENGTH`] bytes for version 1, or 16 plus the declared length
//! (at most 65535) for version 2.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// "a 108-byte buffer is always enough to store all the line and a trailing zero" (§2.1):
/// the longest version-1 line, CRLF included, is 107 bytes.
pub const V1_MAX_LENGTH: usize = 107;

/// The version-2 signature (§2.2): "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A".
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

const V1_PREFIX: &[u8] = b"PROXY ";

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A relayed TCP connection: the original client (`source`) and the address it reached
    /// (`destination`).
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The header carries no client address to use: version 2's `LOCAL` command (health
    /// checks by the proxy itself), version 1's `UNKNOWN`, or a version-2 family other than
    /// TCP over IPv4/IPv6 (`AF_UNSPEC`, `AF_UNIX`). §2.2: the receiver "must use the real
    /// connection endpoints and not the ones sent in the protocol header".
    UseSocket,
}

/// The outcome of looking at the first bytes of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `length` bytes; what follows it is the proxied stream.
    Complete { header: ProxyHeader, length: usize },
    /// A valid beginning; at least one more byte is needed.
    Incomplete,
}

/// Why the bytes are not a PROXY header; the connection is then closed without an answer
/// (§2: "the receiver must not try to guess", and must not start the application protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyError(pub &'static str);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad PROXY protocol header: {}", self.0)
    }
}

impl std::error::Error for ProxyError {}

/// Parses a PROXY header (version 1 or 2) at the start of `input`.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    if input.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    if input[0] == V2_SIGNATURE[0] {
        return parse_v2(input);
    }
    parse_v1(input)
}

/// Version 1: one line, `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n`, or
/// `PROXY UNKNOWN` followed by anything up to CRLF; single spaces, at most 107 bytes.
fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = input.len().min(V1_PREFIX.len());
    if input[..prefix] != V1_PREFIX[..prefix] {
        return Err(ProxyError("neither a version 1 nor a version 2 signature"));
    }
    let window = &input[..input.len().min(V1_MAX_LENGTH)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        if input.len() >= V1_MAX_LENGTH {
            return Err(ProxyError("version 1 line longer than 107 bytes"));
        }
        return Ok(Parsed::Incomplete);
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ProxyError("version 1 line not ended by CRLF"));
    }
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..lf - 1])
        .map_err(|_| ProxyError("version 1 line is not ASCII"))?;
    let length = lf + 1;
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    let header = match family {
        // §2.1: "the receiver must ignore anything presented before the CRLF is found".
        "UNKNOWN" => ProxyHeader::UseSocket,
        "TCP4" | "TCP6" => {
            let parts: Vec<&str> = fields.collect();
            let [source, destination, source_port, destination_port] = parts[..] else {
                return Err(ProxyError("version 1 line needs 4 fields after TCP4/TCP6"));
            };
            let v6 = family == "TCP6";
            ProxyHeader::Proxied {
                source: SocketAddr::new(v1_address(source, v6)?, v1_port(source_port)?),
                destination: SocketAddr::new(
                    v1_address(destination, v6)?,
                    v1_port(destination_port)?,
                ),
            }
        }
        _ => {
            return Err(ProxyError(
                "version 1 protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    Ok(Parsed::Complete { header, length })
}

fn v1_address(text: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let address = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    address.map_err(|_| ProxyError("version 1 address does not match its family"))
}

/// §2.1: ports are decimal numbers 0..65535 (digits only: `u16::from_str` would take `+1`).
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProxyError("version 1 port is not a decimal number"));
    }
    text.parse()
        .map_err(|_| ProxyError("version 1 port out of range"))
}

/// Version 2: the 12-byte signature, version and command, family and transport, a 16-bit
/// big-endian length, then that many bytes of addresses and TLVs (which are skipped).
fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyError> {
    let signature = input.len().min(V2_SIGNATURE.len());
    if input[..signature] != V2_SIGNATURE[..signature] {
        return Err(ProxyError("neither a version 1 nor a version 2 signature"));
    }
    if input.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let version_command = input[12];
    // §2.2: "the highest four bits contains the version ... must always be \x2".
    if version_command >> 4 != 2 {
        return Err(ProxyError("version 2 signature with another version"));
    }
    let local = match version_command & 0x0F {
        0x0 => true,
        0x1 => false,
        _ => return Err(ProxyError("version 2 command is neither LOCAL nor PROXY")),
    };
    let family = input[13];
    let declared = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let length = 16 + declared;
    if input.len() < length {
        return Ok(Parsed::Incomplete);
    }
    let body = &input[16..length];
    if local {
        // §2.2: LOCAL "must ... use the real connection endpoints"; the address block, if
        // any, is ignored.
        return Ok(Parsed::Complete {
            header: ProxyHeader::UseSocket,
            length,
        });
    }
    let header = match family {
        // TCP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes.
        0x11 => {
            let block = body
                .get(..12)
                .ok_or(ProxyError("version 2 length too short for TCP over IPv4"))?;
            let address =
                |at: usize| IpAddr::from([block[at], block[at + 1], block[at + 2], block[at + 3]]);
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(address(0), port(8)),
                destination: SocketAddr::new(address(4), port(10)),
            }
        }
        // TCP over IPv6: 16 + 16 address bytes, 2 + 2 port bytes.
        0x21 => {
            let block = body
                .get(..36)
                .ok_or(ProxyError("version 2 length too short for TCP over IPv6"))?;
            let address = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(address(0), port(32)),
                destination: SocketAddr::new(address(16), port(34)),
            }
        }
        // UDP over IPv4/IPv6: not a stream this server could be carrying.
        0x12 | 0x22 => return Err(ProxyError("version 2 transport is UDP")),
        // AF_UNSPEC, AF_UNIX (stream or datagram): §2.2, "the receiver ... must ignore the
        // address information" and use the socket's.
        0x00 | 0x30 | 0x31 | 0x32 => ProxyHeader::UseSocket,
        _ => return Err(ProxyError("version 2 family or transport unknown")),
    };
    Ok(Parsed::Complete { header, length })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (ProxyHeader, usize) {
        match parse(input) {
            Ok(Parsed::Complete { header, length }) => (header, length),
            other => panic!("{other:?} for {input:?}"),
        }
    }

    fn proxied(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    #[test]
    fn v1_examples_from_the_specification() {
        // haproxy doc/proxy-protocol.txt §2.1 examples.
        let line = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(
            complete(line),
            (
                proxied("255.255.255.255:65535", "255.255.255.255:65535"),
                line.len()
            )
        );
        let line = b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert!(
            parse(line).is_err(),
            "the doc's elided address is not an address"
        );
        let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(complete(longest).1, 104);
        // The doc's worst case: UNKNOWN with two full IPv6 addresses is exactly 107 bytes.
        let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), V1_MAX_LENGTH);
        assert_eq!(complete(longest), (ProxyHeader::UseSocket, V1_MAX_LENGTH));
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            complete(line),
            (proxied("192.168.0.1:56324", "192.168.0.11:443"), 47)
        );
        let line = b"PROXY TCP6 2001:db8::1 ::1 1234 80\r\n";
        assert_eq!(complete(line).0, proxied("[2001:db8::1]:1234", "[::1]:80"));
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (ProxyHeader::UseSocket, 15));
        let unknown = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(complete(unknown).0, ProxyHeader::UseSocket);
    }

    #[test]
    fn v1_incomplete_then_bounded() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        for end in 0..line.len() {
            assert_eq!(parse(&line[..end]), Ok(Parsed::Incomplete), "{end}");
        }
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LENGTH, b'x');
        assert!(parse(&long).is_err(), "107 bytes without a line end");
        long.truncate(V1_MAX_LENGTH - 1);
        assert_eq!(parse(&long), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_garbage_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"G",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY \xff\r\n",
            b"proxy TCP4",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(command);
        header.push(family);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    #[test]
    fn v2_tcp4_tcp6_with_tlvs() {
        // §2.2: PROXY over TCP/IPv4, 192.168.0.1:56324 -> 192.168.0.11:443, then one TLV
        // (PP2_TYPE_ALPN "h2") that is skipped.
        let mut body = vec![192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB];
        body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        let mut bytes = v2(0x21, 0x11, &body);
        let length = bytes.len();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            complete(&bytes),
            (proxied("192.168.0.1:56324", "192.168.0.11:443"), length)
        );
        let mut body = Vec::new();
        body.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&[0x04, 0xD2, 0x00, 0x50]);
        assert_eq!(
            complete(&v2(0x21, 0x21, &body)).0,
            proxied("[2001:db8::7]:1234", "[::1]:80")
        );
    }

    #[test]
    fn v2_local_unspec_and_unix_use_the_socket() {
        assert_eq!(complete(&v2(0x20, 0x00, b"")), (ProxyHeader::UseSocket, 16));
        // LOCAL with an address block: still the socket's (HAProxy health checks).
        let block = [127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2];
        assert_eq!(complete(&v2(0x20, 0x11, &block)).0, ProxyHeader::UseSocket);
        assert_eq!(complete(&v2(0x21, 0x00, b"")).0, ProxyHeader::UseSocket);
        assert_eq!(
            complete(&v2(0x21, 0x31, &[0u8; 216])).0,
            ProxyHeader::UseSocket
        );
    }

    #[test]
    fn v2_incomplete_until_its_declared_length() {
        let body = [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
        let bytes = v2(0x21, 0x11, &body);
        for end in 0..bytes.len() {
            assert_eq!(parse(&bytes[..end]), Ok(Parsed::Incomplete), "{end}");
        }
        assert_eq!(complete(&bytes).1, 28);
    }

    #[test]
    fn v2_garbage_is_refused() {
        let tcp4 = [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
        for bad in [
            v2(0x11, 0x11, &tcp4),       // version 1 in a version-2 header
            v2(0x22, 0x11, &tcp4),       // command 2
            v2(0x21, 0x11, &tcp4[..11]), // too short for its family
            v2(0x21, 0x21, &[0u8; 35]),  // too short for IPv6
            v2(0x21, 0x12, &tcp4),       // UDP
            v2(0x21, 0x41, &tcp4),       // family 4
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x00".to_vec(),
            b"\r\n".to_vec().into_iter().chain(*b"GET").collect(),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
