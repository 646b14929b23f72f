//! The TLS side of accepting a connection: which protocol the client speaks, the handshake,
//! and the configuration `reload_tls()` swaps.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::io::tls::config::{server_config, Resumption, TlsFileError, TlsFiles};
use crate::io::tls::prefixed::Prefixed;

/// What a TLS connection runs on: TCP, after any bytes read ahead of the handshake (what
/// followed a PROXY protocol header).
pub type TlsStream = tokio_rustls::server::TlsStream<Prefixed<TcpStream>>;

/// A TLS record of content type `handshake` starts with this byte (RFC 8446 §5.1,
/// `ContentType handshake(22)`; a TLS 1.2 ClientHello the same, RFC 5246 §6.2.1).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The server's TLS settings: the files, the current configuration, and what resumption
/// needs across reloads.
pub struct TlsAcceptor {
    files: TlsFiles,
    resumption: Resumption,
    config: ArcSwap<ServerConfig>,
}

impl TlsAcceptor {
    /// Reads and checks both files (see `config`).
    pub fn load(files: TlsFiles) -> Result<Self, TlsFileError> {
        let resumption = Resumption::new()?;
        let config = server_config(&files, &resumption)?;
        Ok(TlsAcceptor {
            files,
            resumption,
            config: ArcSwap::new(config),
        })
    }

    /// Re-reads the files: connections accepted from now on use them; open ones keep the
    /// configuration they started with (each handshake holds its own `Arc`). On an error the
    /// current configuration stays.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let config = server_config(&self.files, &self.resumption)?;
        self.config.store(config);
        Ok(())
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }
}

/// What a new connection on an HTTPS port turned out to be.
pub enum Accepted {
    /// The handshake completed.
    Tls(Box<TlsStream>),
    /// The first byte is an ASCII letter: a plain HTTP request line (RFC 9112 §3: a request
    /// starts with its method, a token). It gets a cleartext 400.
    PlainHttp(Prefixed<TcpStream>),
    /// Anything else: garbage, an unsupported version or cipher, a handshake cut short or
    /// not done by `deadline`, a client that left. The connection just closes; the reason
    /// is for the DEBUG log.
    Failed(String),
}

/// Looks at the first byte, then runs the handshake, all by `deadline` (the connection's
/// `header_timeout`, counted from the accept).
pub async fn accept(
    tcp: Prefixed<TcpStream>,
    acceptor: &TlsAcceptor,
    deadline: Instant,
) -> Accepted {
    let first = match timeout_at(deadline, tcp.peek_first()).await {
        Ok(Some(first)) => first,
        Ok(None) => return Accepted::Failed("closed before its first byte".into()),
        Err(_) => return Accepted::Failed("sent nothing within header_timeout".into()),
    };
    if first.is_ascii_alphabetic() {
        return Accepted::PlainHttp(tcp);
    }
    if first != HANDSHAKE_RECORD {
        return Accepted::Failed(format!("not a TLS handshake (first byte {first:#04x})"));
    }
    let handshake = tokio_rustls::TlsAcceptor::from(acceptor.current()).accept(tcp);
    match timeout_at(deadline, handshake).await {
        Ok(Ok(stream)) => Accepted::Tls(Box::new(stream)),
        // rustls has already sent the alert the failure calls for (RFC 8446 §6.2), e.g.
        // `protocol_version` for an SSL 3.0 or TLS 1.0 client.
        Ok(Err(error)) => Accepted::Failed(format!("TLS handshake failed: {error}")),
        Err(_) => Accepted::Failed("TLS handshake not done within header_timeout".into()),
    }
}
