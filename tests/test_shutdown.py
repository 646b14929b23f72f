"""Graceful shutdown: stop() and serve_forever() with signals, over real sockets.

stop() must stop accepting at once, let in-flight requests (and responses already being
written) finish within ``shutdown_grace``, close idle keep-alive connections at once and
give up on a hung handler after ``shutdown_grace``.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import godottpd
import pytest

HOST = "127.0.0.1"


def _connect_refused(port: int) -> bool:
    """True when a TCP connect to ``port`` is refused (nobody listening)."""
    try:
        s = socket.create_connection((HOST, port), timeout=1)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


class _Stopper(threading.Thread):
    """Calls ``srv.stop()`` on its own thread and records when it returned."""

    def __init__(self, srv: Any) -> None:
        super().__init__(daemon=True)
        self.srv = srv
        self.started_at = 0.0
        self.returned_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            self.srv.stop()
        except BaseException as exc:
            self.error = exc
        self.returned_at = time.monotonic()

    @property
    def elapsed(self) -> float:
        return self.returned_at - self.started_at


# --------------------------------------------------------------------------- #
# stop()
# --------------------------------------------------------------------------- #


def test_connect_after_stop_is_refused(serve, make_router, fetch) -> None:
    srv = serve({"/": make_router(get=lambda q, s: s.send(200, "x", "text/plain"))})
    port = srv.port
    assert fetch(srv, "GET", "/").status == 200
    srv.stop()
    assert srv.is_running is False
    assert _connect_refused(port), "a connection was accepted after stop() returned"


def test_stop_refuses_new_connections_while_draining(serve, make_router, raw, build, wait) -> None:
    """While stop() waits for an in-flight request, new connections are already refused,
    and the in-flight response still arrives in full."""
    entered = threading.Event()
    release = threading.Event()
    body = bytes(range(256)) * 4096  # 1 MiB

    def slow(req: Any, res: Any) -> None:
        entered.set()
        release.wait(10)
        res.send_raw(200, body)

    srv = serve({"/slow": make_router(get=slow)}, shutdown_grace=10.0)
    port = srv.port
    c = raw(srv)
    c.send(build("GET", "/slow"))
    assert entered.wait(5)
    stopper = _Stopper(srv)
    stopper.start()
    try:
        assert wait(lambda: _connect_refused(port), 3, 0.05), (
            "new connections still accepted while stop() drains"
        )
        assert stopper.is_alive(), "stop() returned while a request was still in flight"
    finally:
        release.set()
    r = c.read_response(timeout=10)
    assert r.status == 200
    assert r.body == body
    stopper.join(10)
    assert not stopper.is_alive()
    assert stopper.error is None
    assert c.is_closed(timeout=3), "connection left open after the in-flight response"


def test_in_flight_request_finishes_in_full(serve, make_router, raw, build) -> None:
    entered = threading.Event()
    body = os.urandom(2 * 1024 * 1024)

    def slow(req: Any, res: Any) -> None:
        entered.set()
        time.sleep(0.5)
        res.send_raw(200, body)

    srv = serve({"/slow": make_router(get=slow)}, shutdown_grace=5.0)
    c = raw(srv, timeout=10)
    c.send(build("GET", "/slow"))
    assert entered.wait(5)
    t0 = time.monotonic()
    srv.stop()
    elapsed = time.monotonic() - t0
    assert srv.is_running is False
    assert elapsed < 4.0, f"stop() took {elapsed:.2f}s for a 0.5 s handler"
    r = c.read_response(timeout=10)
    assert r.status == 200
    assert len(r.body) == len(body)
    assert r.body == body
    # The response told the client the connection ends, or the server closes it now.
    assert c.is_closed(timeout=3)


def test_response_finished_during_shutdown_says_connection_close(
    serve, make_router, raw, build
) -> None:
    """The server closes the connection after a response it sends while stopping, so that
    response must carry ``Connection: close`` (RFC 9112 section 9.6), or a keep-alive
    client may send its next request into a closing connection."""
    entered = threading.Event()

    def slow(req: Any, res: Any) -> None:
        entered.set()
        time.sleep(0.5)
        res.send(200, "done", "text/plain")

    srv = serve({"/slow": make_router(get=slow)}, shutdown_grace=5.0)
    c = raw(srv)
    c.send(build("GET", "/slow"))
    assert entered.wait(5)
    stopper = _Stopper(srv)
    stopper.start()
    r = c.read_response(timeout=5)
    stopper.join(10)
    assert r.status == 200
    assert r.body == b"done"
    assert c.is_closed(timeout=3)
    assert (r.get("connection") or "").lower() == "close", (
        f"response sent while stopping, then closed, without Connection: close: {r.head!r}"
    )


@pytest.mark.parametrize(
    "first, rest, want",
    [
        pytest.param(b"GET /ok HTTP/1.1\r\nHost: x\r\n", b"\r\n", b"ok", id="half-head"),
        pytest.param(
            b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
            b"world",
            b"10",
            id="half-body",
        ),
    ],
)
def test_request_partly_received_at_stop_is_finished(
    serve, make_router, raw, first, rest, want
) -> None:
    """A request whose first bytes arrived before stop() is in flight, not idle: the
    client gets to finish sending it within the grace period and gets its answer."""
    router = make_router(
        get=lambda q, s: s.send(200, "ok", "text/plain"),
        post=lambda q, s: s.send(200, str(len(q.body)), "text/plain"),
    )
    srv = serve({"/ok": router}, shutdown_grace=5.0)
    c = raw(srv)
    c.send(first)
    time.sleep(0.1)
    stopper = _Stopper(srv)
    stopper.start()
    time.sleep(0.3)
    c.send(rest)
    r = c.read_response(timeout=5)
    assert r.status == 200
    assert r.body == want
    assert c.is_closed(timeout=3)
    stopper.join(10)
    assert not stopper.is_alive()
    assert stopper.elapsed < 3.0


def test_stop_with_ten_idle_keepalive_connections_is_quick(serve, make_router, raw, build) -> None:
    srv = serve(
        {"/": make_router(get=lambda q, s: s.send(200, "x", "text/plain"))},
        shutdown_grace=10.0,
        keepalive_timeout=60.0,
    )
    clients = [raw(srv) for _ in range(10)]
    for c in clients:
        r = c.request(build("GET", "/"))
        assert r.status == 200
        assert r.body == b"x"
    # And one that connected but never sent a byte.
    silent = raw(srv)
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.stop()
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, f"stop() took {elapsed:.2f}s with 10 idle keep-alive connections"
    for i, c in enumerate([*clients, silent]):
        assert c.is_closed(timeout=2), f"idle connection {i} left open after stop()"
        assert bytes(c.buf) == b"", f"idle connection {i} got bytes: {bytes(c.buf)!r}"


@pytest.mark.concurrent_handlers
@pytest.mark.parametrize("grace", [0.5, 1.5])
def test_stop_returns_within_grace_when_a_handler_hangs(
    serve, make_router, raw, build, grace
) -> None:
    entered = threading.Event()
    release = threading.Event()

    def stuck(req: Any, res: Any) -> None:
        entered.set()
        release.wait(20)
        try:
            res.send(200, "late", "text/plain")
        except Exception:
            pass

    srv = serve({"/stuck": make_router(get=stuck)}, shutdown_grace=grace)
    c = raw(srv)
    c.send(build("GET", "/stuck"))
    try:
        assert entered.wait(5)
        t0 = time.monotonic()
        srv.stop()
        elapsed = time.monotonic() - t0
        assert srv.is_running is False
        assert elapsed < grace + 1.5, f"stop() took {elapsed:.2f}s with shutdown_grace={grace}"
        assert elapsed >= grace * 0.8, (
            f"stop() gave up after {elapsed:.2f}s, before shutdown_grace={grace}"
        )
        # The busy connection was closed by stop(), without a (late) 200.
        assert c.is_closed(timeout=3), "busy connection left open after the grace period"
        assert b"200 OK" not in bytes(c.buf)
    finally:
        release.set()


def test_response_being_written_to_slow_reader_is_not_cut_short(serve, make_router) -> None:
    """A 20 MB response, read slowly in small pieces, completes although stop() is called
    while it is being written (within shutdown_grace)."""
    size = 20 * 1024 * 1024
    body = (bytes(range(256)) * (size // 256))[:size]
    digest = hashlib.sha256(body).hexdigest()

    def big(req: Any, res: Any) -> None:
        res.send_raw(200, body)

    srv = serve({"/big": make_router(get=big)}, shutdown_grace=30.0, write_timeout=30.0)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.settimeout(10)
    s.connect((HOST, srv.port))
    stopper = _Stopper(srv)
    try:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        # Read the head and a little of the body, then stop the server mid-write.
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, "closed before the head"
            data += chunk
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert f"content-length: {size}".encode() in head.lower(), head
        received = bytearray(rest)
        stopper.start()
        # Read in small pieces, slowly: about 5 s for the whole body.
        t_start = time.monotonic()
        while len(received) < size:
            chunk = s.recv(32 * 1024)
            if not chunk:
                break
            received += chunk
            time.sleep(0.003)
        read_time = time.monotonic() - t_start
        assert len(received) == size, (
            f"response cut short: {len(received)} of {size} bytes after {read_time:.1f}s"
        )
        assert hashlib.sha256(bytes(received[:size])).hexdigest() == digest
        assert stopper.is_alive() or stopper.returned_at >= t_start + read_time * 0.5, (
            "stop() returned long before the response was written"
        )
        # Then the server closes the connection, and stop() returns.
        s.settimeout(5)
        assert s.recv(1) == b""
    finally:
        s.close()
    stopper.join(10)
    assert not stopper.is_alive(), "stop() did not return after the response completed"
    assert stopper.error is None


# --------------------------------------------------------------------------- #
# serve_forever() in a subprocess, with signals
# --------------------------------------------------------------------------- #

SERVER_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from godottpd import HttpServer, HttpRouter

    BODY = bytes(range(256)) * 4096  # 1 MiB

    class Slow(HttpRouter):
        def handle_get(self, request, response):
            print("entered", flush=True)
            time.sleep(float(request.query.get("s", "0.8")))
            response.send_raw(200, BODY)

    class Ok(HttpRouter):
        def handle_get(self, request, response):
            # "ready" once serve_forever() has installed its SIGTERM handler.
            handler = signal.getsignal(signal.SIGTERM)
            ready = handler not in (signal.SIG_DFL, signal.SIG_IGN, None)
            response.send(200, "ready" if ready else "starting", "text/plain")

    # Same handler mode as the serve fixture (GODOTTPD_TEST_HANDLER_THREADS=0: inline).
    mode = os.environ.get("GODOTTPD_TEST_HANDLER_THREADS")
    extra = {} if mode is None else {"handler_threads": int(mode)}
    srv = HttpServer(port=0, bind_address="127.0.0.1", shutdown_grace=5.0, **extra)
    srv.register_router("/slow", Slow())
    srv.register_router("/", Ok())
    srv.start()
    print("port", srv.port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        print("keyboardinterrupt running=%s" % srv.is_running, flush=True)
        sys.exit(0)
    finally:
        print("finally running=%s" % srv.is_running, flush=True)
    print("returned", flush=True)
    """
)


def _spawn_server() -> tuple[subprocess.Popen[bytes], int]:
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(godottpd.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    line = _readline(proc, 10)
    assert line.startswith(b"port "), (line, proc.stderr.read() if proc.poll() is not None else b"")
    port = int(line.split()[1])
    # start() runs before serve_forever(): wait until serve_forever() is in charge.
    deadline = time.monotonic() + 10
    while _get(port, "/") != b"ready":
        assert time.monotonic() < deadline, "serve_forever() never installed its SIGTERM handler"
        time.sleep(0.02)
    return proc, port


def _get(port: int, path: str) -> bytes:
    """One request with Connection: close; the body of a 200, else the whole reply."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return body if head.startswith(b"HTTP/1.1 200") else data


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return b""
    return proc.stdout.readline()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_forever_exits_cleanly_on_signal_after_in_flight_request(sig) -> None:
    proc, port = _spawn_server()
    try:
        client = socket.create_connection((HOST, port), timeout=10)
        client.sendall(b"GET /slow?s=0.8 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _readline(proc, 5) == b"entered\n"
        t0 = time.monotonic()
        proc.send_signal(sig)
        # The in-flight response arrives in full.
        data = bytearray()
        while True:
            try:
                chunk = client.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        client.close()
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), bytes(data[:200])
        assert body == bytes(range(256)) * 4096, f"got {len(body)} body bytes"
        rc = proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        out = proc.stdout.read().decode() if proc.stdout else ""
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert rc == 0, f"exit code {rc}\nstdout: {out}\nstderr: {err}"
        assert elapsed < 5.0, f"process took {elapsed:.2f}s to exit"
        assert "Traceback" not in err, err
        if sig == signal.SIGINT:
            assert "keyboardinterrupt running=False" in out, out
        else:
            # SIGTERM: serve_forever() returns normally once stopped; code after it runs.
            assert "finally running=False" in out, out
            assert "returned" in out, out
        assert _connect_refused(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_forever_exits_promptly_on_signal_when_idle(sig) -> None:
    proc, port = _spawn_server()
    try:
        # An idle keep-alive connection must not hold the exit up.
        idle = socket.create_connection((HOST, port), timeout=5)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert rc == 0, f"exit code {rc}\nstderr: {err}"
        assert elapsed < 2.0, f"process took {elapsed:.2f}s to exit when idle"
        idle.settimeout(3)
        try:
            assert idle.recv(1) == b""
        except ConnectionResetError:
            pass
        idle.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()
