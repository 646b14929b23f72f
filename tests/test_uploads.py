"""Streamed request bodies (``stream_body = True``) over real sockets: ``request.stream()``,
``request.save()``, ``100 Continue`` on the first read, per-router ``max_body_size``,
stalls, pipelining after a streamed body, memory bounded whatever the size, and every
handler mode (threaded, inline, ``poll()``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST
from godottpd import BadRequest, HttpFileRouter, HttpRouter, HttpServer

MiB = 1024 * 1024
INLINE = os.environ.get("GODOTTPD_TEST_HANDLER_THREADS") == "0"

Handler = Callable[[Any, Any], None]


def streamed(post: Handler, **attributes: Any) -> HttpRouter:
    """A router whose ``handle_post`` is ``post`` and whose bodies stream."""

    def handle_post(self: Any, request: Any, response: Any) -> None:
        post(request, response)

    namespace: dict[str, Any] = {"stream_body": True, "handle_post": handle_post}
    namespace.update(attributes)
    return type("Uploads", (HttpRouter,), namespace)()


def digest_handler(request: Any, response: Any) -> None:
    """Answers the SHA-256 of the body and how many pieces it came in."""
    sha = hashlib.sha256()
    pieces = 0
    for piece in request.stream():
        sha.update(piece)
        pieces += 1
    response.send(200, f"{sha.hexdigest()} {pieces}", "text/plain")


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples this process's RSS (the server's: it runs in-process) on a thread."""

    def __init__(self) -> None:
        self.baseline = rss_bytes()
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_bytes() - self.baseline)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return max(self.peak, rss_bytes() - self.baseline)


def post(
    port: int, path: str, body: bytes | Iterator[bytes], headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        chunked = not isinstance(body, bytes)
        connection.request("POST", path, body=body, headers=headers or {}, encode_chunked=chunked)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_a_streamed_body_arrives_whole_with_content_length_and_chunked(serve: Any) -> None:
    server = serve({"/up": streamed(digest_handler)})
    body = os.urandom(3 * MiB + 17)
    expected = hashlib.sha256(body).hexdigest()
    status, answer = post(server.port, "/up", body)
    assert status == 200
    digest, pieces = answer.decode().split()
    assert digest == expected
    assert int(pieces) > 1, "a 3 MiB body comes in pieces"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    status, answer = post(server.port, "/up", chunks())
    assert (status, answer.split()[0].decode()) == (200, expected)
    # An empty body is an empty stream.
    status, answer = post(server.port, "/up", b"")
    assert status == 200
    assert answer.split()[0].decode() == hashlib.sha256(b"").hexdigest()


def test_the_handler_runs_on_the_head_and_body_raises(serve: Any, raw: Any) -> None:
    started = threading.Event()
    seen: dict[str, Any] = {}

    def handler(request: Any, response: Any) -> None:
        started.set()
        try:
            _ = request.body
        except RuntimeError as error:
            seen["body"] = str(error)
        seen["text"] = b"".join(request.stream())
        response.send(200, "ok")

    server = serve({"/up": streamed(handler)})
    client = raw(server)
    client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    assert started.wait(10), "the handler did not run on the head alone"
    client.send(b"hello")
    assert client.read_response().status == 200
    assert "stream_body" in seen["body"]
    assert seen["text"] == b"hello"


def test_100_continue_is_sent_on_the_first_read_only(serve: Any, raw: Any) -> None:
    started = threading.Event()
    go = threading.Event()

    def handler(request: Any, response: Any) -> None:
        started.set()
        go.wait(10)
        response.send_raw(200, b"".join(request.stream()))

    server = serve({"/up": streamed(handler)})
    client = raw(server)
    client.send(
        b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    assert started.wait(10)
    # The handler has not read: nothing may have been said yet.
    client.sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.sock.recv(1)
    client.sock.setblocking(True)
    go.set()
    interim = client.read_response()
    assert interim.status == 100
    client.send(b"data")
    final = client.read_response()
    assert (final.status, final.body) == (200, b"data")


def test_a_handler_that_answers_without_reading_sends_no_100_continue(serve: Any, raw: Any) -> None:
    def handler(request: Any, response: Any) -> None:
        response.send(401, "no")

    server = serve({"/up": streamed(handler)})
    client = raw(server)
    client.send(
        b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 400000\r\n\r\n"
    )
    answer = client.read_response()
    assert (answer.status, answer.body) == (401, b"no")
    # The client never got its go-ahead, so the body is not coming: the server closes.
    assert client.is_closed()


def test_pipelined_requests_after_a_streamed_body(serve: Any, raw: Any, make_router: Any) -> None:
    def small(request: Any, response: Any) -> None:
        response.send_raw(200, request.body)

    unread: dict[str, int] = {"calls": 0}

    def ignore(request: Any, response: Any) -> None:
        unread["calls"] += 1
        response.send(202, "ignored")

    server = serve(
        {
            "/up": streamed(digest_handler),
            "/ignore": streamed(ignore),
            "/echo": make_router(post=small),
        }
    )
    client = raw(server)
    body = b"x" * 200_000
    client.send(
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n"
        + b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nunread"
        + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlast"
    )
    first = client.read_response()
    assert first.body.split()[0].decode() == hashlib.sha256(body).hexdigest()
    assert client.read_response().status == 202
    last = client.read_response()
    assert (last.status, last.body) == (200, b"last")
    assert unread["calls"] == 1


def test_save_writes_200_mb_with_bounded_memory(serve: Any, raw: Any, tmp_path: Path) -> None:
    target = tmp_path / "upload.bin"

    def handler(request: Any, response: Any) -> None:
        response.send(200, str(request.save(target)))

    server = serve({"/up": streamed(handler, max_body_size=None)}, max_body_size=MiB)
    size = 200 * MiB
    piece = bytes(range(256)) * 4096  # 1 MiB, reused
    sha = hashlib.sha256()
    rss = PeakRss()
    client = raw(server, timeout=30)
    client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
    for _ in range(size // len(piece)):
        client.send(piece)
        sha.update(piece)
    answer = client.read_response()
    peak = rss.stop()
    assert (answer.status, answer.body) == (200, str(size).encode())
    assert target.stat().st_size == size
    saved = hashlib.sha256()
    with target.open("rb") as file:
        while block := file.read(4 * MiB):
            saved.update(block)
    assert saved.hexdigest() == sha.hexdigest()
    assert peak < 48 * MiB, f"server RSS grew by {peak / MiB:.1f} MiB for a 200 MB upload"


@pytest.mark.slow
def test_save_writes_2_gb_with_bounded_memory(serve: Any, tmp_path: Path) -> None:
    target = tmp_path / "upload.bin"

    def handler(request: Any, response: Any) -> None:
        response.send(200, str(request.save(target)))

    server = serve({"/up": streamed(handler, max_body_size=None)})
    size = 2048 * MiB
    piece = b"\x5a" * (4 * MiB)
    rss = PeakRss()
    status, answer = post(
        server.port, "/up", iter([piece] * (size // len(piece))), {"Content-Length": str(size)}
    )
    peak = rss.stop()
    assert (status, answer) == (200, str(size).encode())
    assert target.stat().st_size == size
    target.unlink()
    assert peak < 64 * MiB, f"server RSS grew by {peak / MiB:.1f} MiB for a 2 GB upload"


def test_a_stalled_upload_gets_408_and_the_read_raises(serve: Any, raw: Any) -> None:
    raised: list[BaseException] = []

    def handler(request: Any, response: Any) -> None:
        try:
            for _ in request.stream():
                pass
        except BadRequest as error:
            raised.append(error)
            raise

    server = serve({"/up": streamed(handler)}, body_timeout=0.5, min_body_rate=0)
    client = raw(server)
    client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
    answer = client.read_response(timeout=10)
    assert answer.status == 408
    assert b"stalled" in answer.body
    assert getattr(raised[0], "status", None) == 408
    assert client.is_closed()


def test_a_client_that_leaves_mid_upload_raises_connection_error(serve: Any, raw: Any) -> None:
    raised: list[BaseException] = []
    done = threading.Event()

    def handler(request: Any, response: Any) -> None:
        try:
            for _ in request.stream():
                pass
        except ConnectionError as error:
            raised.append(error)
        finally:
            done.set()

    server = serve({"/up": streamed(handler)})
    client = raw(server)
    client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 500)
    client.close()
    assert done.wait(10)
    assert len(raised) == 1


def test_max_body_size_per_router(serve: Any, make_router: Any) -> None:
    def length(request: Any, response: Any) -> None:
        response.send(200, str(sum(len(piece) for piece in request.stream())))

    def whole(request: Any, response: Any) -> None:
        response.send(200, str(len(request.body)))

    capped = make_router(post=whole)
    type(capped).max_body_size = 50
    server = serve(
        {
            "/small": streamed(length, max_body_size=1000),
            "/free": streamed(length, max_body_size=None),
            "/default": streamed(length),
            "/capped": capped,
        },
        max_body_size=4000,
    )
    assert post(server.port, "/small", b"x" * 1000) == (200, b"1000")
    assert post(server.port, "/small", b"x" * 1001)[0] == 413
    # Past the limit while it arrives (chunked): the handler's read raises, 413 answers.
    assert post(server.port, "/small", iter([b"x" * 600, b"x" * 600]))[0] == 413
    assert post(server.port, "/free", b"x" * 100_000) == (200, b"100000")
    assert post(server.port, "/default", b"x" * 4001)[0] == 413
    assert post(server.port, "/default", b"x" * 4000) == (200, b"4000")
    # A router that does not stream takes max_body_size too.
    assert post(server.port, "/capped", b"x" * 50) == (200, b"50")
    assert post(server.port, "/capped", b"x" * 51)[0] == 413


def test_stream_and_save_need_stream_body(serve: Any, probe: Any) -> None:
    def both(request: Any) -> list[str]:
        errors = []
        for call in (request.stream, lambda: request.save("/nonexistent/x")):
            try:
                call()
            except RuntimeError as error:
                errors.append(str(error))
        return errors

    p = probe(both)
    server = serve({"/p": p})
    assert post(server.port, "/p", b"abc")[0] == 200
    errors = p.result()
    assert len(errors) == 2
    assert all("stream_body" in error for error in errors)


def test_max_body_size_must_be_an_int_or_none(serve: Any) -> None:
    server = serve()
    for bad, kind in ((-1, ValueError), ("10", TypeError), (True, TypeError)):
        with pytest.raises(kind):
            server.register_router("/x", streamed(digest_handler, max_body_size=bad))


def test_poll_mode_streams_a_body(serve: Any) -> None:
    server = serve({"/up": streamed(digest_handler)}, threaded=False)
    stop = threading.Event()

    def host_loop() -> None:
        while not stop.is_set():
            server.poll(0.05)

    loop = threading.Thread(target=host_loop)
    loop.start()
    try:
        body = os.urandom(2 * MiB)
        status, answer = post(server.port, "/up", body)
        assert (status, answer.split()[0].decode()) == (200, hashlib.sha256(body).hexdigest())
    finally:
        stop.set()
        loop.join()


def test_inline_mode_an_upload_does_not_stall_other_connections(
    serve: Any, raw: Any, tmp_path: Path
) -> None:
    """In the inline mode a handler waiting for body drives every connection's I/O, so a
    file is served meanwhile; a handler that hands the request to a thread frees the loop
    for the other handlers too."""
    (tmp_path / "page.txt").write_bytes(b"served")
    reading = threading.Event()
    results: dict[str, Any] = {}

    def waiting(request: Any, response: Any) -> None:
        stream = request.stream()
        results["first"] = next(stream)
        reading.set()
        results["rest"] = b"".join(stream)
        response.send(200, "done")

    def handed_off(request: Any, response: Any) -> None:
        def work() -> None:
            response.send(200, str(request.save(tmp_path / "handed.bin")))

        threading.Thread(target=work).start()

    def quick(request: Any, response: Any) -> None:
        response.send(200, "quick")

    quick_router = type("Quick", (HttpRouter,), {"handle_get": lambda s, q, r: quick(q, r)})()
    server = serve(
        {
            "/wait": streamed(waiting),
            "/handoff": streamed(handed_off),
            "/quick": quick_router,
            "/files": HttpFileRouter(str(tmp_path)),
        },
        handler_threads=0,
    )
    uploader = raw(server)
    uploader.send(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nfirst")
    assert reading.wait(10)
    # The handler now waits for the rest of its body; the loop still serves files.
    files = raw(server)
    answer = files.request(b"GET /files/page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (answer.status, answer.body) == (200, b"served")
    uploader.send(b"-rest")
    assert uploader.read_response().status == 200
    assert results == {"first": b"first", "rest": b"-rest"}

    # Handed to a thread, an unfinished upload holds nothing up, handlers included.
    slow = raw(server)
    slow.send(b"POST /handoff HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nhalf")
    other = raw(server)
    answer = other.request(b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (answer.status, answer.body) == (200, b"quick")
    slow.send(b"done")
    assert slow.read_response().body == b"8"


def test_a_body_read_from_another_thread_after_the_handler_returned(serve: Any) -> None:
    def handler(request: Any, response: Any) -> None:
        def work() -> None:
            response.send_raw(200, b"".join(request.stream()))

        threading.Thread(target=work).start()

    server = serve({"/up": streamed(handler)})
    assert post(server.port, "/up", b"later" * 1000) == (200, b"later" * 1000)


def test_server_still_serves_after_uploads(serve: Any) -> None:
    server: HttpServer = serve({"/up": streamed(digest_handler)})
    for _ in range(20):
        assert post(server.port, "/up", b"abc")[0] == 200


# --------------------------------------------------------------------------- #
# multipart/form-data, parsed as it arrives (request.form())
# --------------------------------------------------------------------------- #


def curl_form(port: int, path: str, *fields: str) -> tuple[int, str]:
    """POSTs a form with ``curl -F`` (which asks for ``100 Continue`` on large bodies)."""
    arguments = ["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}"]
    for field in fields:
        arguments += ["-F", field]
    done = subprocess.run(
        [*arguments, f"http://{HOST}:{port}{path}"], capture_output=True, check=True, timeout=90
    )
    text, _, status = done.stdout.decode().rpartition("\n")
    return int(status), text


def form_handler(folder: Path) -> Handler:
    def handler(request: Any, response: Any) -> None:
        seen = []
        for field in request.form():
            if field.filename is None:
                seen.append(f"{field.name}={field.read().decode()}")
            else:
                size = field.save(folder / field.filename)
                seen.append(f"{field.name}:{field.filename}:{field.content_type}:{size}")
        response.send(200, "\n".join(seen), "text/plain")

    return handler


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_a_form_file_part_is_saved_as_it_arrives(serve: Any, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    source = tmp_path / "video.bin"
    size = 64 * MiB
    with source.open("wb") as file:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            file.write(block)
    router = streamed(form_handler(saved), max_body_size=None)
    server = serve({"/form": router})
    rss = PeakRss()
    status, text = curl_form(
        server.port,
        "/form",
        "title=holiday",
        f"video=@{source};type=video/mp4",
        "note=last",
    )
    peak = rss.stop()
    assert status == 200, text
    assert text.splitlines() == [
        "title=holiday",
        f"video:video.bin:video/mp4:{size}",
        "note=last",
    ]
    assert (saved / "video.bin").read_bytes() == source.read_bytes()
    assert peak < 48 * MiB, f"server RSS grew by {peak / MiB:.1f} MiB for a 64 MiB form"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_a_form_read_whole_parses_too(serve: Any, make_router: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"contents")
    saved = tmp_path / "saved"
    saved.mkdir()
    server = serve({"/form": make_router(post=form_handler(saved))})
    status, text = curl_form(server.port, "/form", "x=1", f"doc=@{tmp_path / 'a.txt'}")
    assert (status, text.splitlines()) == (200, ["x=1", "doc:a.txt:text/plain:8"])
    assert (saved / "a.txt").read_bytes() == b"contents"


def test_a_form_that_is_not_one_is_a_400(serve: Any) -> None:
    def handler(request: Any, response: Any) -> None:
        for _ in request.form():
            pass
        response.send(200, "parsed")

    server = serve({"/form": streamed(handler)})
    status, body = post(server.port, "/form", b"a=1", {"Content-Type": "text/plain"})
    assert status == 400
    assert b"not multipart/form-data" in body
    malformed = b"--X\r\nContent-Disposition: form-data; name=a\r\n\r\nno end"
    status, body = post(
        server.port,
        "/form",
        malformed,
        {"Content-Type": "multipart/form-data; boundary=X"},
    )
    assert status == 400
    assert b"multipart" in body


def test_a_streamed_upload_over_tls(serve: Any, tls_certs: Any, tmp_path: Path) -> None:
    target = tmp_path / "tls.bin"

    def handler(request: Any, response: Any) -> None:
        response.send(200, str(request.save(target)))

    server = serve(
        {"/up": streamed(handler, max_body_size=None)},
        tls_cert=tls_certs.rsa_chain,
        tls_key=tls_certs.rsa_key,
    )
    body = os.urandom(8 * MiB)
    connection = http.client.HTTPSConnection(
        HOST, server.port, timeout=30, context=tls_certs.client_context()
    )
    try:
        connection.request("POST", "/up", body=body, headers={"Expect": "100-continue"})
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, str(len(body)).encode())
    finally:
        connection.close()
    assert target.read_bytes() == body
