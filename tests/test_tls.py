"""HTTPS over real sockets, with real clients: Python's ``ssl``, ``curl`` and
``openssl s_client``; hostile clients; files; ``reload_tls()``."""

from __future__ import annotations

import http.client
import logging
import os
import resource
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST, RawClient, build_request, wait_for
from godottpd import HttpFileRouter, HttpServer
from tls_support import first_der

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
def https(serve: Callable[..., HttpServer], make_router: Any, tls_certs: Any) -> Any:
    """``https(**kwargs)``: a TLS server (RSA chain by default) whose ``/who`` answers
    ``"<scheme> <method> <path>"`` and whose POST echoes the body."""

    def _https(routes: dict[str, Any] | None = None, **kwargs: Any) -> HttpServer:
        kwargs.setdefault("tls_cert", tls_certs.rsa_chain)
        kwargs.setdefault("tls_key", tls_certs.rsa_key)

        def get(req: Any, res: Any) -> None:
            res.send(200, f"{req.scheme} {req.method} {req.path}", "text/plain")

        def post(req: Any, res: Any) -> None:
            res.send_raw(200, req.body)

        table = {"/who": make_router(get=get, post=post)}
        table.update(routes or {})
        return serve(table, **kwargs)

    return _https


_open: list[RawClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _open:
        _open.pop().close()


def plain_client(port: int, **kwargs: Any) -> RawClient:
    client = RawClient(port, **kwargs)
    _open.append(client)
    return client


def tls_client(server: HttpServer, tls_certs: Any, **kwargs: Any) -> RawClient:
    return plain_client(server.port, tls=tls_certs.client_context(), **kwargs)


def answers(server: HttpServer, tls_certs: Any) -> bool:
    """A well-behaved client is served (the server survived whatever came before)."""
    client = tls_client(server, tls_certs)
    try:
        response = client.request(build_request("GET", "/who"))
        return response.status == 200 and response.body == b"https GET /who"
    finally:
        client.close()


# --------------------------------------------------------------------------- #
# Clients that verify the certificate
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_python_ssl_client_verifies_the_chain(https: Any, tls_certs: Any, kind: str) -> None:
    server = https(
        tls_cert=getattr(tls_certs, f"{kind}_chain"), tls_key=getattr(tls_certs, f"{kind}_key")
    )
    connection = http.client.HTTPSConnection(
        "localhost", server.port, context=tls_certs.client_context(), timeout=10
    )
    try:
        connection.request("GET", "/who")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == b"https GET /who"
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.getpeercert(binary_form=True) == first_der(getattr(tls_certs, f"{kind}_chain"))
    finally:
        connection.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13(https: Any, tls_certs: Any, version: ssl.TLSVersion) -> None:
    server = https()
    context = tls_certs.client_context()
    context.minimum_version = context.maximum_version = version
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
            tls.sendall(build_request("GET", "/who", {"Connection": "close"}))
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"https GET /who")


def test_alpn_picks_http11(https: Any, tls_certs: Any) -> None:
    server = https()
    context = tls_certs.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"


def test_alpn_without_http11_is_refused(https: Any, tls_certs: Any) -> None:
    # RFC 7301 §3.2: no protocol in common is a `no_application_protocol` alert.
    server = https()
    context = tls_certs.client_context()
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(sock, server_hostname="localhost")
    assert answers(server, tls_certs)


def test_request_scheme_is_http_on_a_plain_server(serve: Any, make_router: Any, fetch: Any) -> None:
    router = make_router(get=lambda req, res: res.send(200, req.scheme, "text/plain"))
    server = serve({"/": router})
    assert fetch(server, "GET", "/").text == "http"


@needs_curl
def test_curl_with_cacert(https: Any, tls_certs: Any) -> None:
    server = https()
    url = f"https://localhost:{server.port}/who"
    result = subprocess.run(
        ["curl", "-sS", "-v", "--cacert", str(tls_certs.root), url, url],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"https GET /whohttps GET /who"
    log = result.stderr.decode(errors="replace")
    assert "ALPN: server accepted http/1.1" in log or "ALPN, server accepted" in log
    # Two URLs, one connection: keep-alive over TLS.
    assert "Re-using existing" in log or "Reusing existing" in log, log


@needs_curl
def test_curl_refuses_without_the_root(https: Any, tls_certs: Any) -> None:
    server = https()
    result = subprocess.run(
        ["curl", "-sS", f"https://localhost:{server.port}/who"],
        capture_output=True,
        timeout=30,
        check=False,
        env={**os.environ, "CURL_CA_BUNDLE": "/nonexistent", "SSL_CERT_FILE": "/nonexistent"},
    )
    assert result.returncode != 0
    assert answers(server, tls_certs)


def s_client(port: int, *args: str, data: bytes = b"") -> str:
    request = data or build_request("GET", "/who", {"Connection": "close"})
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", "localhost",
         "-ign_eof", *args],
        input=request,
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


@needs_openssl
@pytest.mark.parametrize(("flag", "name"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_openssl_s_client_versions(https: Any, tls_certs: Any, flag: str, name: str) -> None:
    server = https()
    out = s_client(server.port, flag, "-CAfile", str(tls_certs.root), "-verify_return_error")
    assert f"Protocol  : {name}" in out or f"New, {name}" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "https GET /who" in out


@needs_openssl
def test_openssl_s_client_alpn(https: Any, tls_certs: Any) -> None:
    server = https()
    out = s_client(server.port, "-alpn", "http/1.1")
    assert "ALPN protocol: http/1.1" in out, out


@needs_openssl
@pytest.mark.parametrize("flag", ["-tls1_2", "-tls1_3"])
def test_openssl_session_resumption(https: Any, tls_certs: Any, tmp_path: Path, flag: str) -> None:
    server = https()
    session = tmp_path / "session.pem"
    first = s_client(server.port, flag, "-sess_out", str(session))
    assert "https GET /who" in first
    assert session.exists() and session.stat().st_size > 0, first
    second = s_client(server.port, flag, "-sess_in", str(session))
    assert "Reused," in second, second
    assert "https GET /who" in second


@needs_openssl
def test_tls_12_resumption_by_session_id(https: Any, tls_certs: Any, tmp_path: Path) -> None:
    server = https()
    session = tmp_path / "session.pem"
    s_client(server.port, "-tls1_2", "-no_ticket", "-sess_out", str(session))
    second = s_client(server.port, "-tls1_2", "-no_ticket", "-sess_in", str(session))
    assert "Reused," in second, second


# --------------------------------------------------------------------------- #
# Keep-alive, pipelining, bodies
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_keep_alive_and_pipelining(https: Any, tls_certs: Any, scheme: str) -> None:
    # Over plain TCP too: requests that arrive while a handler works (here the two after the
    # large POST) must be answered without the client sending anything more.
    if scheme == "https":
        server = https()
        client = tls_client(server, tls_certs)
    else:
        server = https(tls_cert=None, tls_key=None)
        client = plain_client(server.port)
    who = f"{scheme} GET /who".encode()
    for _ in range(3):
        assert client.request(build_request("GET", "/who")).body == who
    body = os.urandom(200_000)
    pipeline = (
        build_request("GET", "/who")
        + build_request("POST", "/who", body=body)
        + build_request("GET", "/missing")
        + build_request("GET", "/who")
    )
    client.send(pipeline)
    assert client.read_response().body == who
    assert client.read_response().body == body
    assert client.read_response().status == 404
    assert client.read_response().body == who


def test_large_request_and_response_bodies(https: Any, tls_certs: Any, make_router: Any) -> None:
    big = os.urandom(3 * 1024 * 1024)
    router = make_router(get=lambda req, res: res.send_raw(200, big))
    server = https({"/big": router})
    client = tls_client(server, tls_certs, timeout=20)
    assert client.request(build_request("GET", "/big")).body == big
    assert client.request(build_request("POST", "/who", body=big)).body == big


# --------------------------------------------------------------------------- #
# Plain HTTP and hostile clients on the HTTPS port
# --------------------------------------------------------------------------- #


def test_plain_http_gets_a_cleartext_400(https: Any, tls_certs: Any) -> None:
    server = https()
    client = plain_client(server.port)
    response = client.request(build_request("GET", "/who"))
    assert response.status == 400
    assert "HTTPS" in response.text
    assert "https://" in response.text
    assert (response.get("connection") or "").lower() == "close"
    assert client.is_closed()
    assert answers(server, tls_certs)


def test_plain_http_sent_in_pieces_still_gets_the_400(https: Any, tls_certs: Any) -> None:
    server = https()
    client = plain_client(server.port)
    client.send(b"G")
    client.send(b"ET /who HTTP/1.1\r\n")
    assert client.read_response().status == 400
    assert client.is_closed()


def closes(client: RawClient, timeout: float = 5.0) -> bool:
    """Whether the server closes within ``timeout``; what it sent first (a TLS alert, say)
    is kept in ``client.buf``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.is_closed(timeout=max(0.01, deadline - time.monotonic())):
            return True
    return False


def hostile(server: HttpServer, tls_certs: Any, data: bytes, close: bool = True) -> RawClient:
    """Sends ``data`` raw; the server must close without answering, and serve others."""
    client = plain_client(server.port)
    client.send(data)
    if close:
        assert closes(client), "left open"
        assert bytes(client.buf)[:4] != b"HTTP", bytes(client.buf)
    assert answers(server, tls_certs)
    return client


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01\x02\x03" * 64,
        b"\x16\x03\x01\x00\x05hello",  # a handshake record holding no ClientHello
        b"\x16\x03\x01\xff\xff" + b"\x01" * 300,  # a record longer than TLS allows
        b"\x15\x03\x03\x00\x02\x02\x28",  # an alert as the first record
        b"\x80\x2e\x01\x00\x02\x00\x15",  # an SSL 2.0 ClientHello
        b"\xff" * 1000,
    ],
)
def test_garbage_closes_only_that_connection(https: Any, tls_certs: Any, data: bytes) -> None:
    # Garbage is refused at once; a record that announces more than is sent waits for the
    # rest until header_timeout, like a truncated head.
    server = https(header_timeout=1.0)
    hostile(server, tls_certs, data)


def client_hello(tls_certs: Any, context: ssl.SSLContext | None = None) -> bytes:
    """The bytes of a real ClientHello, from an ``ssl`` object that writes to memory."""
    context = context or tls_certs.client_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_truncated_client_hello_then_close(https: Any, tls_certs: Any) -> None:
    server = https()
    hello = client_hello(tls_certs)
    client = plain_client(server.port)
    client.send(hello[: len(hello) // 2])
    client.close()
    assert answers(server, tls_certs)


def test_truncated_client_hello_then_silence_is_closed_at_header_timeout(
    https: Any, tls_certs: Any
) -> None:
    server = https(header_timeout=1.0)
    hello = client_hello(tls_certs)
    client = plain_client(server.port)
    client.send(hello[: len(hello) // 2])
    started = time.monotonic()
    assert client.is_closed(timeout=8)
    assert time.monotonic() - started < 7
    assert client.buf == b""
    assert answers(server, tls_certs)


def test_silent_connection_is_closed_at_header_timeout(https: Any, tls_certs: Any) -> None:
    server = https(header_timeout=1.0)
    client = plain_client(server.port)
    assert client.is_closed(timeout=8)
    assert answers(server, tls_certs)


def handshake_through(sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
                      outgoing: ssl.MemoryBIO) -> None:  # fmt: skip
    """Finishes a memory-BIO handshake over ``sock``."""
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                sock.sendall(pending)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake") from None
            incoming.write(data)
    pending = outgoing.read()
    if pending:
        sock.sendall(pending)


def test_client_hello_dribbled_byte_by_byte_completes(https: Any, tls_certs: Any) -> None:
    server = https()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(hello)):
            sock.send(hello[i : i + 1])
        handshake_through(sock, tls, incoming, outgoing)
        tls.write(build_request("GET", "/who", {"Connection": "close"}))
        sock.sendall(outgoing.read())
        received = b""
        while chunk := sock.recv(65536):
            incoming.write(chunk)
            try:
                while data := tls.read(65536):
                    received += data
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
    assert received.endswith(b"https GET /who")


def test_client_hello_dribbled_too_slowly_is_cut_at_header_timeout(
    https: Any, tls_certs: Any
) -> None:
    server = https(header_timeout=1.0)
    hello = client_hello(tls_certs)
    client = plain_client(server.port)
    started = time.monotonic()
    closed = False
    for i in range(len(hello)):
        try:
            client.send(hello[i : i + 1])
        except OSError:
            closed = True
            break
        if client.is_closed(timeout=0.05):
            closed = True
            break
    assert closed or client.is_closed(timeout=5)
    assert time.monotonic() - started < 10
    assert answers(server, tls_certs)


def test_client_that_vanishes_mid_handshake(https: Any, tls_certs: Any) -> None:
    server = https()
    hello = client_hello(tls_certs)
    for _ in range(5):
        client = plain_client(server.port)
        client.send(hello)
        client.sock.recv(100)  # the start of the server's flight, then gone
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        client.close()  # RST
    assert answers(server, tls_certs)


def old_context(tls_certs: Any, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = version
    return context


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_unsupported_version_is_refused(
    https: Any, tls_certs: Any, version: ssl.TLSVersion
) -> None:
    server = https()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the point of the test
            context = old_context(tls_certs, version)
        hello = client_hello(tls_certs, context)
    except (ssl.SSLError, ValueError) as error:
        pytest.skip(f"this OpenSSL cannot offer {version.name}: {error}")
    client = plain_client(server.port)
    client.send(hello)
    assert closes(client)
    # What came back, if anything, is a TLS alert (content type 21), never HTTP.
    assert client.buf[:1] in (b"", b"\x15"), bytes(client.buf)
    assert answers(server, tls_certs)


def test_unsupported_cipher_is_refused(https: Any, tls_certs: Any) -> None:
    server = https()
    context = tls_certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")  # RSA key exchange, CBC: rustls offers neither
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(sock, server_hostname="localhost")
    assert answers(server, tls_certs)


def test_wrong_certificate_trust_fails_on_the_client_only(https: Any, tls_certs: Any) -> None:
    server = https()
    context = ssl.create_default_context()  # the system roots: the test root is not one
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname="localhost")
    assert answers(server, tls_certs)


def test_handshakes_count_against_max_connections(https: Any, tls_certs: Any) -> None:
    server = https(max_connections=2, header_timeout=30.0)
    # Two connections that never finish a handshake fill the server.
    holders = [plain_client(server.port) for _ in range(2)]
    for holder in holders:
        holder.send(b"\x16\x03\x01")
    wait_for(lambda: False, timeout=0.2)
    third = tls_client(server, tls_certs)
    response = third.request(build_request("GET", "/who"))
    assert response.status == 503
    for holder in holders:
        holder.close()
    assert wait_for(lambda: answers(server, tls_certs), timeout=10)


def test_many_hostile_connections_at_once(https: Any, tls_certs: Any) -> None:
    server = https()
    hello = client_hello(tls_certs)
    clients = []
    for i in range(40):
        client = plain_client(server.port)
        client.send([b"\x16\x03\x01\x00", hello[:50], b"\x00" * 10, hello][i % 4])
        clients.append(client)
    assert answers(server, tls_certs)
    for client in clients:
        client.close()
    assert answers(server, tls_certs)


# --------------------------------------------------------------------------- #
# Files over TLS
# --------------------------------------------------------------------------- #


def test_file_router_over_tls(https: Any, tls_certs: Any, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    content = os.urandom(300_000)
    (site / "data.bin").write_bytes(content)
    (site / "index.html").write_text("<p>hi</p>")
    (site / "empty.txt").write_bytes(b"")
    server = https({"/": HttpFileRouter(str(site))})
    client = tls_client(server, tls_certs)
    assert client.request(build_request("GET", "/data.bin")).body == content
    assert client.request(build_request("GET", "/")).body == b"<p>hi</p>"
    assert client.request(build_request("GET", "/empty.txt")).body == b""
    ranged = client.request(build_request("GET", "/data.bin", {"Range": "bytes=100-199"}))
    assert ranged.status == 206 and ranged.body == content[100:200]
    head = client.request(build_request("HEAD", "/data.bin"), method="HEAD")
    assert head.get("content-length") == str(len(content))
    # The connection is still good after the file answers.
    assert client.request(build_request("GET", "/who")).body == b"https GET /who"


def peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def download(server: HttpServer, tls_certs: Any, path: str) -> int:
    """Reads a file answer through TLS into a small buffer; returns the body's length."""
    context = tls_certs.client_context()
    with socket.create_connection((HOST, server.port), timeout=30) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(build_request("GET", path, {"Connection": "close"}))
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(4096)
            head, _, rest = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            total = len(rest)
            buffer = bytearray(256 * 1024)
            while True:
                try:
                    n = tls.recv_into(buffer)
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    break
                if not n:
                    break
                total += n
    return total


@pytest.mark.skipif(not peak_rss_reset(), reason="needs /proc/self/clear_refs")
def test_large_file_over_tls_costs_no_more_memory_than_a_small_one(
    https: Any, tls_certs: Any, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    size = 1 << 30
    with open(site / "big.bin", "wb") as file:
        file.truncate(size)  # sparse: 1 GiB of zeros that costs no disk
    (site / "small.bin").write_bytes(b"x" * 1000)
    server = https({"/": HttpFileRouter(str(site))})
    assert download(server, tls_certs, "/small.bin") == 1000
    peak_rss_reset()
    base = peak_rss_kib()
    assert download(server, tls_certs, "/small.bin") == 1000
    small_growth = peak_rss_kib() - base
    peak_rss_reset()
    base = peak_rss_kib()
    assert download(server, tls_certs, "/big.bin") == size
    big_growth = peak_rss_kib() - base
    # The whole process (server and client) may grow by a few buffers, never by the file.
    assert big_growth < small_growth + 32 * 1024, (small_growth, big_growth)


# --------------------------------------------------------------------------- #
# reload_tls()
# --------------------------------------------------------------------------- #


def test_reload_tls_new_connections_see_the_new_certificate(
    https: Any, tls_certs: Any, tmp_path: Path
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(tls_certs.rsa_chain, cert)
    shutil.copy(tls_certs.rsa_key, key)
    server = https(tls_cert=cert, tls_key=key)
    old = tls_client(server, tls_certs)
    assert old.request(build_request("GET", "/who")).status == 200
    shutil.copy(tls_certs.ec_chain, cert)
    shutil.copy(tls_certs.ec_key, key)
    server.reload_tls()
    new = tls_client(server, tls_certs)
    assert new.request(build_request("GET", "/who")).status == 200
    assert isinstance(new.sock, ssl.SSLSocket) and isinstance(old.sock, ssl.SSLSocket)
    assert new.sock.getpeercert(binary_form=True) == first_der(tls_certs.ec_chain)
    # The open connection carries on, with the certificate it started with.
    assert old.request(build_request("GET", "/who")).status == 200
    assert old.sock.getpeercert(binary_form=True) == first_der(tls_certs.rsa_chain)


def test_reload_tls_from_another_thread_while_serving(https: Any, tls_certs: Any) -> None:
    server = https()
    stop = threading.Event()
    errors: list[BaseException] = []

    def reload_loop() -> None:
        while not stop.is_set():
            try:
                server.reload_tls()
            except BaseException as error:
                errors.append(error)
                return

    thread = threading.Thread(target=reload_loop)
    thread.start()
    try:
        for _ in range(10):
            assert answers(server, tls_certs)
    finally:
        stop.set()
        thread.join()
    assert errors == []


def test_stop_does_not_wait_for_a_stalled_handshake(https: Any, tls_certs: Any) -> None:
    server = https(header_timeout=30.0, shutdown_grace=5.0)
    hello = client_hello(tls_certs)
    stalled = plain_client(server.port)
    stalled.send(hello[:20])
    assert answers(server, tls_certs)  # the stalled one has certainly been accepted
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    assert stalled.is_closed(timeout=3)


# --------------------------------------------------------------------------- #
# Behind a load balancer: PROXY protocol before the handshake, trusted proxies
# --------------------------------------------------------------------------- #


def proxied_request(server: HttpServer, tls_certs: Any, header: bytes, path: str) -> bytes:
    """Sends ``header`` in cleartext, then a TLS handshake and one request on the same
    socket (as HAProxy does with ``send-proxy`` in front of an HTTPS backend)."""
    context = tls_certs.client_context()
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(header)
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(build_request("GET", path, {"Connection": "close"}))
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return data


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
        + socket.inet_aton("203.0.113.9")
        + socket.inet_aton("127.0.0.1")
        + (5555).to_bytes(2, "big")
        + (443).to_bytes(2, "big"),
    ],
    ids=["v1", "v2"],
)
def test_proxy_protocol_header_then_tls(
    https: Any, tls_certs: Any, make_router: Any, header: bytes
) -> None:
    router = make_router(
        get=lambda req, res: res.send(200, f"{req.client.host} {req.scheme}", "text/plain")
    )
    server = https({"/client": router}, proxy_protocol=True)
    data = proxied_request(server, tls_certs, header, "/client")
    assert data.endswith(b"203.0.113.9 https"), data
    # Without the header the connection is refused (closed), and the server carries on.
    client = plain_client(server.port)
    client.send(client_hello(tls_certs))
    assert closes(client)
    assert proxied_request(server, tls_certs, header, "/client").endswith(b"203.0.113.9 https")


# --------------------------------------------------------------------------- #
# Streamed bodies and send_file over TLS
# --------------------------------------------------------------------------- #


def test_streamed_body_and_send_file_over_tls(
    https: Any, tls_certs: Any, make_router: Any, tmp_path: Path
) -> None:
    chunks = [os.urandom(n) for n in (1, 1000, 70_000, 5)]
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(os.urandom(500_000))

    def stream(req: Any, res: Any) -> None:
        with res.stream(200) as body:
            for chunk in chunks:
                body.write(chunk)

    def events(req: Any, res: Any) -> None:
        sse = res.event_stream(heartbeat=None)
        sse.send("one")
        sse.send({"two": 2}, event="second")
        sse.close()

    server = https(
        {
            "/stream": make_router(get=stream),
            "/events": make_router(get=events),
            "/file": make_router(get=lambda req, res: res.send_file(data_file)),
        }
    )
    client = tls_client(server, tls_certs, timeout=20)
    streamed = client.request(build_request("GET", "/stream"))
    assert streamed.chunked and streamed.body == b"".join(chunks)
    sse = client.request(build_request("GET", "/events"))
    assert sse.get("content-type", "").startswith("text/event-stream")
    assert b"data: one\n\n" in sse.body and b"event: second\n" in sse.body
    assert client.request(build_request("GET", "/file")).body == data_file.read_bytes()
    assert client.request(build_request("GET", "/who")).body == b"https GET /who"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.seen.set()


def test_a_failed_handshake_is_a_debug_line_on_the_godottpd_logger(
    https: Any, tls_certs: Any
) -> None:
    logger = logging.getLogger("godottpd")
    lines = _Lines()
    previous = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)
    try:
        # The logger takes DEBUG lines when the server starts: failed handshakes are logged.
        server = https()
        hostile(server, tls_certs, b"\xff" * 64)
        assert lines.seen.wait(10), "no DEBUG line"
        assert any("not a TLS handshake (first byte 0xff)" in line for line in lines.lines)
        assert all("127.0.0.1" in line for line in lines.lines)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(previous)


def test_without_debug_logging_a_failed_handshake_logs_nothing(https: Any, tls_certs: Any) -> None:
    logger = logging.getLogger("godottpd")
    lines = _Lines()
    logger.addHandler(lines)
    try:
        assert not logger.isEnabledFor(logging.DEBUG)
        server = https()
        hostile(server, tls_certs, b"\xff" * 64)
        server.stop()  # the log thread, if any, has logged all it had
        assert lines.lines == []
    finally:
        logger.removeHandler(lines)
