"""Large bodies: send_raw(bytes) of 16 KiB or more is written from the bytes object itself."""

from __future__ import annotations

import threading

import pytest

BIG = bytes(i % 251 for i in range(200_000))


@pytest.mark.parametrize("size", [16 * 1024 - 1, 16 * 1024, 200_000])
def test_large_bytes_body_arrives_whole(serve, make_router, raw, size) -> None:
    data = BIG[:size]
    server = serve({"/big": make_router(get=lambda q, s: s.send_raw(200, data))})
    client = raw(server)
    for _ in range(3):
        response = client.request(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.status == 200
        assert response.body == data
        assert response.get("content-length") == str(size)


def test_pipelined_large_bodies_and_head_stay_in_order(serve, make_router, raw) -> None:
    server = serve({"/big": make_router(get=lambda q, s: s.send_raw(200, BIG))})
    client = raw(server)
    get = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
    head = b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n"
    client.send(get + head + get)
    first = client.read_response("GET")
    middle = client.read_response("HEAD")
    last = client.read_response("GET")
    assert first.body == BIG and last.body == BIG
    assert middle.body == b"" and middle.get("content-length") == str(len(BIG))


def test_large_body_of_a_deferred_response(serve, make_router, raw) -> None:
    def later(q, s) -> None:
        threading.Timer(0.05, lambda: s.send_raw(200, BIG)).start()

    server = serve({"/big": make_router(get=later)})
    response = raw(server).request(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.body == BIG


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_large_bytes_like_body(serve, make_router, raw, kind) -> None:
    server = serve({"/big": make_router(get=lambda q, s: s.send_raw(200, kind(BIG)))})
    response = raw(server).request(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.body == BIG
