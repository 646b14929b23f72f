"""Behaviour the architecture work changed, over real sockets: a client that leaves while its
response is kept frees its connection slot, a body dribbled in is cut by ``min_body_rate``,
and every routable method has a default handler that answers 405 with the route's ``Allow``."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from godottpd import HttpRouter, HttpServer

HOST = "127.0.0.1"


class Keeper(HttpRouter):
    """Keeps every response unsent (the application will answer later, or never)."""

    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.arrived = threading.Semaphore(0)

    def handle_get(self, request: Any, response: Any) -> None:
        self.kept.append(response)
        self.arrived.release()


class Ok(HttpRouter):
    def handle_get(self, request: Any, response: Any) -> None:
        response.send(200, "ok", "text/plain")


def _get(port: int) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as conn:
        conn.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def test_clients_that_leave_while_their_response_is_kept_free_their_slots(serve, wait) -> None:
    keeper = Keeper()
    srv = serve({"/keep": keeper, "/ok": Ok()}, max_connections=50)
    for _ in range(50):
        conn = socket.create_connection((HOST, srv.port), timeout=10)
        conn.sendall(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
        assert keeper.arrived.acquire(timeout=10), "the handler never ran"
        conn.close()
    # Every slot is free again once the peers' FINs are seen: a new client is served, not
    # refused with 503 (before, each kept response held its slot in CLOSE_WAIT for ever).
    assert wait(lambda: _get(srv.port).startswith(b"HTTP/1.1 200"), timeout=10)
    # Answering the kept responses now is a harmless no-op, and the server carries on.
    for response in keeper.kept:
        assert not response.client.is_open
        response.send(200, "late", "text/plain")
    assert _get(srv.port).startswith(b"HTTP/1.1 200")


def test_a_body_dribbled_byte_by_byte_is_cut_by_min_body_rate(serve) -> None:
    srv = serve({"/ok": Ok()}, min_body_rate=1024, body_timeout=30.0)
    with socket.create_connection((HOST, srv.port), timeout=20) as conn:
        conn.sendall(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        started = time.monotonic()
        answer = b""
        conn.settimeout(0.25)
        while b"\r\n\r\n" not in answer:
            assert time.monotonic() - started < 15, "a 4 B/s body was never cut"
            try:
                conn.sendall(b"x")
                answer += conn.recv(4096)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"too slowly" in answer
    # Cut once the 5 s grace period has passed, long before body_timeout.
    assert 4.5 <= elapsed < 12, elapsed


def test_min_body_rate_zero_lets_a_slow_body_through(serve, build) -> None:
    class Echo(HttpRouter):
        def handle_post(self, request: Any, response: Any) -> None:
            response.send_raw(200, request.body)

    srv = serve({"/echo": Echo()}, min_body_rate=0)
    with socket.create_connection((HOST, srv.port), timeout=20) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        for byte in b"abc":
            conn.sendall(bytes([byte]))
        data = b""
        while not data.endswith(b"abc"):
            chunk = conn.recv(4096)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("value", [-1, "fast", 1.5])
def test_min_body_rate_must_be_a_non_negative_int(value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"min_body_rate|integer|int"):
        HttpServer(port=0, min_body_rate=value)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_routable_method_has_a_default_handler(method: str) -> None:
    # One list of methods (src/http/method.rs) names the handlers; each exists on HttpRouter.
    assert callable(getattr(HttpRouter, f"handle_{method.lower()}"))


def test_default_handlers_answer_405_with_the_routes_allow(serve, raw, build) -> None:
    class OnlyPut(HttpRouter):
        def handle_put(self, request: Any, response: Any) -> None:
            response.send(204, "", "text/plain")

    srv = serve({"/r": OnlyPut()})
    c = raw(srv)
    for method in ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]:
        response = c.request(f"{method} /r HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert response.status == 405, method
        assert response.get("allow") == "PUT"
