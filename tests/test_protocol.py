"""HTTP/1.1 wire behaviour: keep-alive, pipelining, chunked bodies, Connection, HTTP/1.0,
Expect: 100-continue, HEAD, binary and non-ASCII bodies, concurrency."""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any

import pytest


@pytest.fixture
def echo_server(serve, make_router):
    """/echo echoes the body (POST/PUT) or the path parameter-free info (GET).
    /port answers the client's port, /slow/:ms sleeps then answers :ms."""

    def echo_post(req: Any, res: Any) -> None:
        res.set("X-Method", req.method)
        res.set("X-Version", req.http_version)
        res.send_raw(200, req.body, "application/octet-stream")

    def echo_get(req: Any, res: Any) -> None:
        res.send(200, "get:" + req.path, "text/plain")

    def port(req: Any, res: Any) -> None:
        res.send(200, str(req.client.port), "text/plain")

    def slow(req: Any, res: Any) -> None:
        time.sleep(int(req.parameters["ms"]) / 1000)
        res.send(200, req.parameters["ms"], "text/plain")

    def text(req: Any, res: Any) -> None:
        res.send(200, "héllo ✓ 日本語 🎉", "text/plain")

    def big(req: Any, res: Any) -> None:
        res.send_raw(200, bytes(range(256)) * (5 * 4096))  # 5 MiB

    return serve(
        {
            "/echo": make_router(get=echo_get, post=echo_post, put=echo_post),
            "/port": make_router(get=port),
            "/slow/:ms": make_router(get=slow),
            "/text": make_router(get=text),
            "/big": make_router(get=big),
            "/param/:p": make_router(get=lambda q, s: s.send(200, q.parameters["p"], "text/plain")),
        }
    )


# --------------------------------------------------------------------------- #
# Keep-alive and Connection
# --------------------------------------------------------------------------- #


def test_keep_alive_is_default_on_http11(echo_server, raw, build) -> None:
    c = raw(echo_server)
    ports = set()
    for _ in range(5):
        r = c.request(build("GET", "/port"))
        assert r.status == 200
        assert (r.get("connection") or "").lower() != "close"
        ports.add(r.text)
    assert ports == {str(c.local_port)}
    assert not c.is_closed(timeout=0.2)


def test_keep_alive_with_http_client(echo_server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", echo_server.port, timeout=5)
    try:
        seen = set()
        for i in range(5):
            conn.request("POST", "/echo", body=f"body {i}".encode())
            r = conn.getresponse()
            assert r.read() == f"body {i}".encode()
            conn.request("GET", "/port")
            r = conn.getresponse()
            seen.add(r.read())
        assert len(seen) == 1
    finally:
        conn.close()


def test_connection_close_is_honoured(echo_server, raw, build) -> None:
    c = raw(echo_server)
    r = c.request(build("GET", "/echo", {"Connection": "close"}))
    assert r.status == 200
    assert r.body == b"get:/echo"
    assert (r.get("connection") or "").lower() == "close"
    assert c.is_closed(timeout=3)


def test_connection_close_token_list(echo_server, raw, build) -> None:
    c = raw(echo_server)
    r = c.request(build("GET", "/echo", {"Connection": "TE, Close"}))
    assert r.status == 200
    assert c.is_closed(timeout=3)


def test_http10_closes_by_default(echo_server, raw, build) -> None:
    c = raw(echo_server)
    r = c.request(build("GET", "/echo", version="HTTP/1.0"))
    assert r.status == 200
    assert r.body == b"get:/echo"
    assert not r.chunked
    assert c.is_closed(timeout=3)


def test_http10_keep_alive_when_asked(echo_server, raw, build) -> None:
    c = raw(echo_server)
    for _ in range(3):
        r = c.request(build("GET", "/port", {"Connection": "keep-alive"}, version="HTTP/1.0"))
        assert r.status == 200
        assert r.text == str(c.local_port)
        assert (r.get("connection") or "").lower() == "keep-alive"
    assert not c.is_closed(timeout=0.2)


def test_http10_post_with_body(echo_server, raw, build) -> None:
    c = raw(echo_server)
    r = c.request(build("POST", "/echo", body=b"ten bytes!", version="HTTP/1.0"))
    assert r.body == b"ten bytes!"
    assert r.get("x-version") == "HTTP/1.0"


# --------------------------------------------------------------------------- #
# Pipelining
# --------------------------------------------------------------------------- #


def test_pipelined_responses_come_back_in_order(echo_server, raw, build) -> None:
    c = raw(echo_server)
    delays = [300, 200, 100, 0, 50]
    c.send(b"".join(build("GET", f"/slow/{ms}") for ms in delays))
    bodies = [c.read_response().text for _ in delays]
    assert bodies == [str(ms) for ms in delays]


def test_pipelined_mixed_methods_and_bodies(echo_server, raw, build) -> None:
    c = raw(echo_server)
    reqs = [
        ("POST", b"first body"),
        ("GET", b""),
        ("PUT", b"\x00\r\n\r\nGET / HTTP/1.1\r\n\r\n"),  # looks like a request, is a body
        ("HEAD", b""),
        ("POST", b""),
        ("GET", b""),
    ]
    c.send(
        b"".join(
            build(m, "/echo", {"Content-Length": "0"} if m == "POST" and not b else {}, b)
            for m, b in reqs
        )
    )
    got = []
    for m, _ in reqs:
        r = c.read_response(m)
        got.append((r.status, r.body))
    assert got == [
        (200, b"first body"),
        (200, b"get:/echo"),
        (200, b"\x00\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
        (200, b""),
        (200, b""),
        (200, b"get:/echo"),
    ]


def test_pipelined_with_close_stops_after_that_request(echo_server, raw, build) -> None:
    c = raw(echo_server)
    c.send(
        build("GET", "/param/one")
        + build("GET", "/param/two", {"Connection": "close"})
        + build("GET", "/param/three")
    )
    assert c.read_response().body == b"one"
    assert c.read_response().body == b"two"
    with pytest.raises(ConnectionError):
        c.read_response()


# --------------------------------------------------------------------------- #
# Chunked request bodies
# --------------------------------------------------------------------------- #


def test_chunked_request_body(echo_server, raw, build) -> None:
    c = raw(echo_server)
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    r = c.request(build("POST", "/echo", {"Transfer-Encoding": "chunked"}, body))
    assert r.status == 200
    assert r.body == b"hello world"
    # framing was consumed exactly: the connection is still usable
    assert c.request(build("GET", "/echo")).body == b"get:/echo"


def test_chunked_with_extensions_trailers_and_hex_case(echo_server, raw, build) -> None:
    c = raw(echo_server)
    payload = bytes(range(256))
    body = (
        b"A;name=value\r\n0123456789\r\n"
        b"100\r\n" + payload + b"\r\n"
        b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n"
    )
    r = c.request(build("POST", "/echo", {"Transfer-Encoding": "chunked"}, body))
    assert r.body == b"0123456789" + payload + b"abcdefghijklmnopqrstuvwxyz"
    assert c.request(build("GET", "/echo")).status == 200


def test_chunked_body_sent_in_pieces(echo_server, raw, build) -> None:
    c = raw(echo_server)
    c.send(build("POST", "/echo", {"Transfer-Encoding": "chunked"}))
    for piece in (b"3\r\n", b"ab", b"c\r\n", b"4\r\nde", b"fg\r\n", b"0\r\n", b"\r\n"):
        c.send(piece)
        time.sleep(0.02)
    r = c.read_response("POST")
    assert r.body == b"abcdefg"


def test_chunked_via_http_client(echo_server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", echo_server.port, timeout=5)
    try:
        conn.request(
            "POST",
            "/echo",
            body=iter([b"one,", b"two,", b"three"]),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        r = conn.getresponse()
        assert r.read() == b"one,two,three"
    finally:
        conn.close()


# --------------------------------------------------------------------------- #
# Expect: 100-continue
# --------------------------------------------------------------------------- #


def test_expect_100_continue(echo_server, raw, build) -> None:
    c = raw(echo_server)
    c.send(build("POST", "/echo", {"Content-Length": "11", "Expect": "100-continue"}))
    interim = c.read_response("POST", timeout=3)
    assert interim.status == 100
    assert interim.body == b""
    c.send(b"hello there")
    final = c.read_response("POST")
    assert final.status == 200
    assert final.body == b"hello there"
    assert c.request(build("GET", "/echo")).status == 200


def test_expect_100_continue_on_404_route_skips_continue(echo_server, raw, build) -> None:
    # Either a 100 then the final response, or the final response directly, is fine;
    # but the final response must be 404 and framing must stay intact.
    c = raw(echo_server)
    c.send(build("POST", "/nowhere", {"Content-Length": "3", "Expect": "100-continue"}))
    r = c.read_response("POST", timeout=3)
    if r.status == 100:
        c.send(b"abc")
        r = c.read_response("POST")
    assert r.status == 404


# --------------------------------------------------------------------------- #
# HEAD
# --------------------------------------------------------------------------- #


def test_head_has_headers_but_no_body(echo_server, raw, build) -> None:
    c = raw(echo_server)
    get = c.request(build("GET", "/text"))
    head = c.request(build("HEAD", "/text"))
    assert head.status == 200
    assert head.body == b""
    assert head.get("content-length") == get.get("content-length") == str(len(get.body))
    assert head.get("content-type") == get.get("content-type")
    nxt = c.request(build("GET", "/param/after-head"))
    assert nxt.body == b"after-head"


def test_head_big_response_sends_nothing(echo_server, raw, build) -> None:
    c = raw(echo_server)
    head = c.request(build("HEAD", "/big"))
    assert head.get("content-length") == str(5 * 1024 * 1024)
    # If any body byte were sent, this status line would be garbage.
    assert c.request(build("GET", "/param/x")).body == b"x"


def test_head_404_has_no_body(echo_server, raw, build) -> None:
    c = raw(echo_server)
    r = c.request(build("HEAD", "/missing"))
    assert r.status == 404
    assert r.get("content-length") == "9"
    assert c.request(build("GET", "/param/y")).body == b"y"


# --------------------------------------------------------------------------- #
# Bodies: binary, large, non-ASCII
# --------------------------------------------------------------------------- #


def test_binary_body_round_trip_byte_for_byte(echo_server, fetch) -> None:
    payload = bytes(range(256)) * 257 + b"\r\n\r\n\x00\xff"
    r = fetch(echo_server, "POST", "/echo", body=payload)
    assert r.status == 200
    assert r.body == payload
    assert r.headers["Content-Length"] == str(len(payload))


def test_large_response(echo_server, fetch) -> None:
    r = fetch(echo_server, "GET", "/big")
    assert len(r.body) == 5 * 1024 * 1024
    assert r.body == bytes(range(256)) * (5 * 4096)


def test_large_request_body(echo_server, fetch) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB
    r = fetch(echo_server, "PUT", "/echo", body=payload)
    assert r.body == payload


def test_non_ascii_response_body(echo_server, raw, build) -> None:
    r = raw(echo_server).request(build("GET", "/text"))
    assert r.body == "héllo ✓ 日本語 🎉".encode()
    assert int(r.get("content-length")) == len("héllo ✓ 日本語 🎉".encode())
    assert r.get("content-type") == "text/plain; charset=utf-8"


def test_non_ascii_path_parameter(echo_server, fetch) -> None:
    r = fetch(echo_server, "GET", "/param/%E6%97%A5%E6%9C%AC%F0%9F%8E%89")
    assert r.text == "日本🎉"


def test_non_ascii_request_body(echo_server, fetch) -> None:
    body = "Grüße, 世界".encode()
    assert fetch(echo_server, "POST", "/echo", body=body).body == body


# --------------------------------------------------------------------------- #
# Concurrency
# --------------------------------------------------------------------------- #


def test_many_concurrent_clients(echo_server) -> None:
    errors: list[str] = []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", echo_server.port, timeout=10)
        try:
            for j in range(10):
                body = f"client {i} request {j}".encode() * (j + 1)
                conn.request("POST", "/echo", body=body)
                r = conn.getresponse()
                got = r.read()
                if got != body:
                    errors.append(f"{i}/{j}: {got[:40]!r}")
        except Exception as exc:
            errors.append(f"{i}: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
