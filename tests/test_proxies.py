"""Behind proxies, in one process: trusted_proxies with Forwarded / X-Forwarded-*, the PROXY
protocol (v1 and v2) on real sockets, socket= with a pre-bound socket, argument checks."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
from godottpd import HttpRouter, HttpServer

HOST = "127.0.0.1"


class Echo(HttpRouter):
    """Answers with what the request says about its client."""

    def handle_get(self, request: Any, response: Any) -> None:
        response.json(
            200,
            {
                "client": request.client.host,
                "port": request.client.port,
                "scheme": request.scheme,
                "host": request.host,
                "xff": request.headers.get("x-forwarded-for"),
            },
        )


def ask(port: int, headers: dict[str, str] | None = None, source: str = HOST) -> dict[str, Any]:
    with socket.create_connection((HOST, port), timeout=10, source_address=(source, 0)) as conn:
        lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        conn.sendall(
            f"GET / HTTP/1.1\r\nHost: app.test\r\n{lines}Connection: close\r\n\r\n".encode()
        )
        return parse(read_all(conn))


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    result: dict[str, Any] = json.loads(body)
    return result


def test_trusted_proxy_names_the_client_scheme_and_host(serve: Callable[..., HttpServer]) -> None:
    server = serve({"/": Echo()}, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    seen = ask(
        server.port,
        {
            "X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.1.2.3",
            "X-Forwarded-Proto": "http, https, http",
            "X-Forwarded-Host": "a, shop.example, b",
        },
    )
    assert seen["client"] == "198.51.100.7"
    assert seen["scheme"] == "https"
    assert seen["host"] == "shop.example"
    seen = ask(server.port, {"Forwarded": 'for="[2001:db8::17]:4711";proto=https;host=x.example'})
    assert (seen["client"], seen["port"], seen["scheme"], seen["host"]) == (
        "2001:db8::17",
        4711,
        "https",
        "x.example",
    )
    # Malformed: ignored, as if absent.
    seen = ask(server.port, {"X-Forwarded-For": "not-an-address"})
    assert seen["client"] == HOST
    assert seen["scheme"] == "http"
    assert seen["host"] == "app.test"


def test_spoofed_headers_from_an_untrusted_peer_change_nothing(
    serve: Callable[..., HttpServer],
) -> None:
    for trusted in ([], ["10.0.0.0/8", "127.0.0.2"]):
        server = serve({"/": Echo()}, trusted_proxies=trusted)
        spoof = {
            "X-Forwarded-For": "1.2.3.4",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=5.6.7.8;proto=https;host=evil.example",
        }
        seen = ask(server.port, spoof)
        assert seen["client"] == HOST
        assert seen["scheme"] == "http"
        assert seen["host"] == "app.test"
        assert seen["xff"] == "1.2.3.4", "passed through untouched"


def test_trusted_proxies_are_validated() -> None:
    with pytest.raises(ValueError, match=r'"10\.0\.0\.0/33"'):
        HttpServer(port=0, trusted_proxies=["127.0.0.1", "10.0.0.0/33"])
    with pytest.raises(ValueError, match='"localhost"'):
        HttpServer(port=0, trusted_proxies=["localhost"])
    HttpServer(port=0, trusted_proxies=["*", "::1", "fd00::/8"])


def proxy_v2(source: str, source_port: int, command: int = 0x21) -> bytes:
    block = socket.inet_aton(source) + socket.inet_aton(HOST) + struct.pack("!HH", source_port, 80)
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    return signature + bytes([command, 0x11]) + struct.pack("!H", len(block)) + block


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as conn:
        conn.sendall(data)
        return read_all(conn)


REQUEST = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"


def test_proxy_protocol_v1_and_v2(serve: Callable[..., HttpServer]) -> None:
    server = serve({"/": Echo()}, proxy_protocol=True)
    assert server.proxy_protocol
    seen = parse(send_raw(server.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n" + REQUEST))
    assert (seen["client"], seen["port"]) == ("203.0.113.9", 5555)
    seen = parse(send_raw(server.port, b"PROXY TCP6 2001:db8::9 ::1 6666 80\r\n" + REQUEST))
    assert (seen["client"], seen["port"]) == ("2001:db8::9", 6666)
    seen = parse(send_raw(server.port, proxy_v2("198.51.100.4", 7777) + REQUEST))
    assert (seen["client"], seen["port"]) == ("198.51.100.4", 7777)
    # LOCAL (a health check by the proxy itself) and UNKNOWN: the socket's address.
    seen = parse(send_raw(server.port, proxy_v2("198.51.100.4", 7777, command=0x20) + REQUEST))
    assert seen["client"] == HOST
    seen = parse(send_raw(server.port, b"PROXY UNKNOWN\r\n" + REQUEST))
    assert seen["client"] == HOST


def test_proxy_protocol_header_split_over_packets(serve: Callable[..., HttpServer]) -> None:
    server = serve({"/": Echo()}, proxy_protocol=True)
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = proxy_v2("192.0.2.1", 1234)
        conn.sendall(header[:7])
        conn.sendall(header[7:20])
        conn.sendall(header[20:] + REQUEST)
        assert parse(read_all(conn))["client"] == "192.0.2.1"


@pytest.mark.parametrize(
    "garbage",
    [
        REQUEST,  # no header at all
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n" + REQUEST,
        b"PROXY " + b"x" * 200 + b"\r\n" + REQUEST,  # longer than 107 bytes
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x02ab" + REQUEST,  # too short for TCP4
    ],
)
def test_proxy_protocol_garbage_or_missing_closes(
    serve: Callable[..., HttpServer], garbage: bytes
) -> None:
    server = serve({"/": Echo()}, proxy_protocol=True)
    assert send_raw(server.port, garbage) == b"", "closed without an answer"
    # The server goes on.
    seen = parse(send_raw(server.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n" + REQUEST))
    assert seen["client"] == "203.0.113.9"


def test_proxy_protocol_counts_against_header_timeout(serve: Callable[..., HttpServer]) -> None:
    server = serve({"/": Echo()}, proxy_protocol=True, header_timeout=0.3)
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        conn.sendall(b"PROXY TCP4 ")
        assert read_all(conn) == b"", "a half header is dropped at header_timeout"


def test_serves_a_pre_bound_socket(serve: Callable[..., HttpServer]) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        server = serve({"/": Echo()}, socket=listener, port=1)
        assert server.port == port
        assert ask(port)["client"] == HOST
        server.stop()
        # The inherited socket is still the caller's, and still listening: serve it again.
        again = serve({"/": Echo()}, socket=listener.fileno())
        assert ask(port)["host"] == "app.test"
        again.stop()
    finally:
        listener.close()


def test_socket_argument_is_validated() -> None:
    unbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError, match="not listening"):
            HttpServer(socket=unbound)
        with pytest.raises(ValueError, match="not a stream"):
            HttpServer(socket=udp)
        with pytest.raises(TypeError):
            HttpServer(socket=True)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            HttpServer(socket="3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not an open file descriptor"):
            HttpServer(socket=987654)
    finally:
        unbound.close()
        udp.close()


def test_request_host(serve: Callable[..., HttpServer]) -> None:
    server = serve({"/": Echo()})
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        conn.sendall(
            b"GET http://other.example:81/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert parse(read_all(conn))["host"] == "other.example:81"
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        raw = read_all(conn)
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["host"] == ""


def test_workers_refused_on_a_running_server(serve: Callable[..., HttpServer]) -> None:
    server = serve({"/": Echo()})
    with pytest.raises(RuntimeError, match="not running"):
        server.serve_forever(workers=2)
    with pytest.raises(ValueError, match="workers"):
        server.serve_forever(workers=-1)
