"""Server limits: each one answers the right status, and the server keeps serving after it."""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import pytest


@pytest.fixture
def ok_router(make_router):
    def get(req: Any, res: Any) -> None:
        res.send(200, "ok", "text/plain")

    def post(req: Any, res: Any) -> None:
        res.send(200, f"got {len(req.body)}", "text/plain")

    return make_router(get=get, post=post)


def _still_serving(raw, srv, build) -> None:
    c = raw(srv)
    r = c.request(build("GET", "/"))
    assert r.status == 200
    assert r.body == b"ok"


# --------------------------------------------------------------------------- #
# 414 request line
# --------------------------------------------------------------------------- #


def test_request_line_too_long_is_414(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_request_line=100)
    c = raw(srv)
    r = c.request(build("GET", "/" + "a" * 500))
    assert r.status == 414
    _still_serving(raw, srv, build)


def test_request_line_within_limit_is_served(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_request_line=100)
    c = raw(srv)
    r = c.request(build("GET", "/" + "a" * 40))
    assert r.status == 404


def test_default_request_line_limit(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router})
    assert raw(srv).request(build("GET", "/" + "a" * 7000)).status == 404
    assert raw(srv).request(build("GET", "/" + "a" * 9000)).status == 414


# --------------------------------------------------------------------------- #
# 431 head size / header count
# --------------------------------------------------------------------------- #


def test_head_too_large_is_431(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_head_size=1024)
    c = raw(srv)
    r = c.request(build("GET", "/", {"X-Big": "v" * 2000}))
    assert r.status == 431
    _still_serving(raw, srv, build)


def test_many_small_headers_exceeding_head_size_is_431(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_head_size=1024, max_headers=200)
    hdrs = [(f"X-H{i}", "v" * 20) for i in range(60)]
    r = raw(srv).request(build("GET", "/", hdrs))
    assert r.status == 431


def test_head_within_size_is_served(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_head_size=1024)
    r = raw(srv).request(build("GET", "/", {"X-Big": "v" * 500}))
    assert r.status == 200


def test_too_many_headers_is_431(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_headers=10)
    hdrs = [("Host", "x")] + [(f"X-H{i}", "1") for i in range(10)]  # 11 headers
    r = raw(srv).request(build("GET", "/", hdrs))
    assert r.status == 431
    _still_serving(raw, srv, build)


def test_exactly_max_headers_is_served(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_headers=10)
    hdrs = [("Host", "x")] + [(f"X-H{i}", "1") for i in range(9)]  # 10 headers
    r = raw(srv).request(build("GET", "/", hdrs))
    assert r.status == 200


# --------------------------------------------------------------------------- #
# 413 body size
# --------------------------------------------------------------------------- #


def test_body_at_limit_is_accepted(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_body_size=1000)
    r = raw(srv).request(build("POST", "/", body=b"x" * 1000))
    assert r.status == 200
    assert r.body == b"got 1000"


def test_body_over_limit_is_413(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_body_size=1000)
    r = raw(srv).request(build("POST", "/", body=b"x" * 1001))
    assert r.status == 413
    _still_serving(raw, srv, build)


def test_declared_huge_content_length_is_rejected_without_reading(
    serve, ok_router, raw, build
) -> None:
    srv = serve({"/": ok_router}, max_body_size=1000)
    c = raw(srv)
    c.send(build("POST", "/", {"Content-Length": str(10**12)}))
    r = c.read_response("POST", timeout=3)
    assert r.status == 413
    _still_serving(raw, srv, build)


def test_chunked_body_over_limit_is_413(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_body_size=1000)
    chunks = b"".join(b"64\r\n" + b"y" * 100 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    r = raw(srv).request(build("POST", "/", {"Transfer-Encoding": "chunked"}, chunks))
    assert r.status == 413
    _still_serving(raw, srv, build)


def test_oversized_chunk_is_413_before_its_data(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_body_size=1000)
    c = raw(srv)
    # Only the size line of a chunk far over the limit: the answer must not wait for data.
    c.send(build("POST", "/", {"Transfer-Encoding": "chunked"}) + b"ffffffff\r\n")
    r = c.read_response("POST", timeout=3)
    assert r.status == 413
    assert c.is_closed(timeout=3)
    _still_serving(raw, srv, build)


def test_expect_continue_with_oversized_body_gets_413_not_100(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, max_body_size=1000)
    c = raw(srv)
    c.send(build("POST", "/", {"Content-Length": "5000", "Expect": "100-continue"}))
    r = c.read_response("POST", timeout=3)
    assert r.status == 413


def test_default_body_limit_is_10_mib(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router})
    c = raw(srv)
    c.send(build("POST", "/", {"Content-Length": str(10 * 1024 * 1024 + 1)}))
    assert c.read_response("POST", timeout=3).status == 413


# --------------------------------------------------------------------------- #
# 408 timeouts
# --------------------------------------------------------------------------- #


def test_incomplete_head_gets_408_then_close(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, header_timeout=0.5)
    c = raw(srv)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    r = c.read_response(timeout=5)
    assert r.status == 408
    assert time.monotonic() - t0 < 3
    assert c.is_closed(timeout=3)
    _still_serving(raw, srv, build)


def test_header_timeout_is_total_not_per_read(serve, ok_router, raw) -> None:
    """A client trickling one header byte at a time must still be cut off (slowloris)."""
    srv = serve({"/": ok_router}, header_timeout=0.5)
    c = raw(srv)
    payload = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000
    t0 = time.monotonic()
    got_reply = False
    for i in range(len(payload)):
        try:
            c.send(payload[i : i + 1])
        except OSError:
            got_reply = True
            break
        readable, _, _ = select.select([c.sock], [], [], 0.1)
        if readable:
            got_reply = True
            break
        if time.monotonic() - t0 > 4:
            break
    elapsed = time.monotonic() - t0
    assert got_reply, "server never cut off a client trickling its headers"
    assert elapsed < 3, f"trickling client kept for {elapsed:.2f}s with header_timeout=0.5"
    try:
        r = c.read_response(timeout=2)
    except ConnectionError:
        return  # closed without a response: acceptable
    assert r.status == 408


def test_body_timeout_closes_connection(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, body_timeout=0.5)
    c = raw(srv)
    c.send(build("POST", "/", {"Content-Length": "10"}) + b"abc")
    t0 = time.monotonic()
    try:
        r = c.read_response("POST", timeout=5)
    except ConnectionError:
        r = None
    assert time.monotonic() - t0 < 3
    if r is not None:
        assert r.status == 408
    assert c.is_closed(timeout=3)
    _still_serving(raw, srv, build)


def test_client_that_never_reads_is_dropped_after_write_timeout(
    serve, make_router, raw, build, wait
) -> None:
    kept: list[Any] = []

    def get(req: Any, res: Any) -> None:
        if req.path == "/big":
            kept.append(res)
            # Far more than the socket buffers of both ends hold.
            res.send_raw(200, b"x" * (64 * 1024 * 1024))
        else:
            res.send(200, "ok", "text/plain")

    srv = serve({"/big": make_router(get=get), "/": make_router(get=get)}, write_timeout=0.5)
    c = raw(srv)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send(build("GET", "/big"))
    assert wait(lambda: bool(kept), 5)
    # The client reads nothing: after write_timeout the server gives up on it.
    assert wait(lambda: not kept[0].client.is_open, 8), "stalled connection still open"
    _still_serving(raw, srv, build)


def test_busy_connection_outlives_keepalive_timeout(serve, ok_router, raw, build) -> None:
    # The idle timeout counts from the last answer, not from the accept: a connection that
    # keeps asking, one request at a time, is never idle long enough to be closed.
    srv = serve({"/": ok_router}, keepalive_timeout=0.3, header_timeout=0.3)
    c = raw(srv)
    deadline = time.monotonic() + 1.5
    answered = 0
    while time.monotonic() < deadline:
        assert c.request(build("GET", "/")).status == 200
        answered += 1
        time.sleep(0.05)
    assert answered > 10
    assert not c.is_closed(timeout=0.05)


def test_keepalive_timeout_closes_idle_connection(serve, ok_router, raw, build) -> None:
    srv = serve({"/": ok_router}, keepalive_timeout=0.5)
    c = raw(srv)
    assert c.request(build("GET", "/")).status == 200
    assert c.request(build("GET", "/")).status == 200  # still open right after a response
    t0 = time.monotonic()
    assert c.is_closed(timeout=4)
    assert time.monotonic() - t0 < 3


# --------------------------------------------------------------------------- #
# 503 connection limit
# --------------------------------------------------------------------------- #


def test_max_connections_503_then_recovers(serve, ok_router, raw, build, wait) -> None:
    srv = serve({"/": ok_router}, max_connections=2, keepalive_timeout=30.0)
    a, b = raw(srv), raw(srv)
    assert a.request(build("GET", "/")).status == 200
    assert b.request(build("GET", "/")).status == 200
    extra = raw(srv)
    extra.send(build("GET", "/"))
    r = extra.read_response(timeout=3)
    assert r.status == 503
    assert extra.is_closed(timeout=3)
    # The two open connections still work.
    assert a.request(build("GET", "/")).status == 200
    # Free a slot: a new client is served again.
    a.close()

    def new_client_ok() -> bool:
        c = raw(srv)
        try:
            return c.request(build("GET", "/")).status == 200
        except ConnectionError:
            return False

    assert wait(new_client_ok, 5, 0.1)


# --------------------------------------------------------------------------- #
# 400 malformed requests
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    ],
    ids=[
        "no-version",
        "header-no-colon",
        "cl-not-number",
        "cl-negative",
        "bad-chunk-size",
        "space-in-header-name",
    ],
)
def test_malformed_request_is_400_and_closed(serve, ok_router, raw, build, data) -> None:
    srv = serve({"/": ok_router})
    c = raw(srv)
    c.send(data)
    r = c.read_response(timeout=3)
    assert r.status == 400
    assert c.is_closed(timeout=3)
    _still_serving(raw, srv, build)
