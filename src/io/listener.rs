//! Listening sockets and the accept loop.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::app::exchange::Scheme;
use crate::io::connection;
use crate::io::engine::{Application, Engine};
use crate::io::tls::acceptor::TlsAcceptor;
use crate::io::tls::refuse::refuse_busy;
use crate::io::tls::serve_tls;

/// Pending connections the kernel may queue before we accept them.
const BACKLOG: i32 = 1024;

/// How a listening socket is made.
#[derive(Clone, Copy, Debug, Default)]
pub struct BindOptions {
    /// `SO_REUSEPORT`: several processes (the workers of `serve_forever(workers=N)`) each
    /// bind the same port and the kernel spreads new connections over their sockets.
    pub reuse_port: bool,
    /// Binds without listening: the supervisor holds such a socket to fix the port
    /// (`port=0`) for its workers; a socket that does not listen is never given connections.
    pub no_listen: bool,
}

fn listen_on(
    address: SocketAddr,
    dual_stack: bool,
    options: BindOptions,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT; it
    // does not let two servers share a port (that would be SO_REUSEPORT), so a busy port
    // still fails with EADDRINUSE.
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if address.is_ipv6() {
        socket.set_only_v6(!dual_stack)?;
    }
    socket.bind(&address.into())?;
    if !options.no_listen {
        socket.listen(BACKLOG)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds `bind_address:port`. `"*"` is every IPv4 and IPv6 address (one dual-stack socket,
/// or IPv4 alone where the host has no IPv6); a name is resolved and its first address
/// that binds is used. `options` add `SO_REUSEPORT` or leave it unlistening.
pub fn bind_with(
    bind_address: &str,
    port: u16,
    options: BindOptions,
) -> io::Result<std::net::TcpListener> {
    if bind_address == "*" {
        return listen_on(
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            true,
            options,
        )
        .or_else(|_| {
            listen_on(
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                false,
                options,
            )
        });
    }
    let host = bind_address
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(bind_address);
    let mut last_error = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("{bind_address:?} resolves to no address"),
    );
    for address in (host, port).to_socket_addrs()? {
        match listen_on(address, false, options) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Takes over an already-listening socket (`HttpServer(socket=...)`, systemd's
/// `LISTEN_FDS`): the descriptor is duplicated, so the caller's copy stays theirs, and the
/// server may be started again after `stop()`. Only a listening TCP socket (IPv4 or IPv6)
/// is taken; anything else is an error saying what it is.
pub fn inherit(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<std::net::TcpListener> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
    let owned = fd.try_clone_to_owned()?;
    let socket = Socket::from(owned);
    match socket.domain() {
        Ok(domain) if domain == Domain::IPV4 || domain == Domain::IPV6 => {}
        Ok(_) => return Err(invalid("not an IPv4 or IPv6 socket")),
        Err(_) => return Err(invalid("not a socket")),
    }
    if socket.r#type()? != Type::STREAM {
        return Err(invalid("not a stream (TCP) socket"));
    }
    if !socket.is_listener()? {
        return Err(invalid("not listening (call listen() on it first)"));
    }
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accepts connections until shutdown; each gets its own task. With `tls`, every
/// connection is HTTPS: its handshake runs in its task, counted as an open connection.
pub async fn accept_loop<A: Application>(
    listener: TcpListener,
    engine: Arc<Engine<A>>,
    tls: Option<Arc<TlsAcceptor>>,
) {
    let stop = engine.stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => match engine.admit() {
                Some(slot) => {
                    let engine = engine.clone();
                    // Answers are written whole; Nagle's algorithm would only delay them.
                    let _ = stream.set_nodelay(true);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => connection::serve(stream, peer, Scheme::Http, engine).await,
                            // Boxed: the handshake's larger future would otherwise
                            // size every plain connection's task too.
                            Some(tls) => Box::pin(serve_tls(stream, peer, tls, engine)).await,
                        }
                        drop(slot);
                    });
                }
                None => match &tls {
                    None => {
                        tokio::spawn(connection::reject_busy(stream, engine.clone()));
                    }
                    Some(tls) => {
                        tokio::spawn(refuse_busy(stream, tls.clone(), engine.clone()));
                    }
                },
            },
            // Out of file descriptors or the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
