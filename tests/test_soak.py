"""Load and soak runs (``python -m pytest -m slow``), each bounded to well under 60 s.

Scale them up with environment variables for a longer run:

* ``GODOTTPD_SOAK_CONNECTIONS`` (200) and ``GODOTTPD_SOAK_PER_CONNECTION`` (50): the
  concurrent keep-alive load next to 20 slowloris connections;
* ``GODOTTPD_SOAK_REQUESTS`` (200000): the memory soak;
* ``GODOTTPD_SOAK_CYCLES`` (5000): the connection open/close cycles of the fd check.

The memory and fd soaks run the server in a subprocess, so ``/proc/PID`` measures the
server alone and not the test client.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import godottpd
import pytest

HOST = "127.0.0.1"

CONNECTIONS = int(os.environ.get("GODOTTPD_SOAK_CONNECTIONS", "200"))
PER_CONNECTION = int(os.environ.get("GODOTTPD_SOAK_PER_CONNECTION", "50"))
SLOWLORIS = 20
REQUESTS = int(os.environ.get("GODOTTPD_SOAK_REQUESTS", "200000"))
CYCLES = int(os.environ.get("GODOTTPD_SOAK_CYCLES", "5000"))
RSS_BOUND_MIB = float(os.environ.get("GODOTTPD_SOAK_RSS_BOUND_MIB", "20"))


def _budget(scale: float) -> float:
    """pytest-timeout for a test whose default run takes well under 60 s."""
    return 60.0 * max(1.0, scale)


pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- #
# A minimal, fast HTTP/1.1 response reader for pipelined load
# --------------------------------------------------------------------------- #


class Conn:
    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def read_responses(self, n: int) -> list[tuple[int, bytes, bytes]]:
        """Read ``n`` responses framed by Content-Length: (status, head, body) each."""
        out: list[tuple[int, bytes, bytes]] = []
        buf = self.buf
        while len(out) < n:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                chunk = self.sock.recv(1 << 18)
                if not chunk:
                    raise ConnectionError(f"closed after {len(out)} of {n} responses")
                buf += chunk
                continue
            head = buf[:end]
            i = head.lower().find(b"\r\ncontent-length:")
            assert i >= 0, head
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17 : j if j >= 0 else len(head)])
            total = end + 4 + length
            while len(buf) < total:
                chunk = self.sock.recv(1 << 18)
                if not chunk:
                    raise ConnectionError(f"closed inside body after {len(out)} responses")
                buf += chunk
            out.append((int(head[9:12]), head, buf[end + 4 : total]))
            buf = buf[total:]
        self.buf = buf
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- #
# Server in a subprocess
# --------------------------------------------------------------------------- #

SERVER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from godottpd import HttpServer, HttpRouter

    class Api(HttpRouter):
        def handle_post(self, request, response):
            parsed = request.get_body_parsed()
            response.set("X-Echo", request.headers.get("x-n", ""))
            response.json(200, {
                "id": request.parameters["id"],
                "a": request.query.get("a"),
                "n": request.headers["x-n"],
                "ua": request.headers.get("user-agent"),
                "len": len(request.body),
                "k": parsed["k"],
                "cookies": request.get_cookies(),
            })

        def handle_get(self, request, response):
            response.json(200, {
                "id": request.parameters["id"],
                "a": request.query.get("a"),
                "n": request.headers.get("x-n"),
                "len": len(request.body),
            })

    class Ok(HttpRouter):
        def handle_get(self, request, response):
            response.send(200, "ok", "text/plain")

    kwargs = json.loads(sys.argv[1])
    srv = HttpServer(port=0, bind_address="127.0.0.1", **kwargs)
    srv.register_router("/api/:id", Api())
    srv.register_router("/", Ok())
    srv.start()
    print("port", srv.port, flush=True)
    sys.stdin.readline()
    srv.stop()
    print("stopped", flush=True)
    """
)


class ServerProcess:
    def __init__(self, **kwargs: Any) -> None:
        self.closed = False
        # Same handler mode as the serve fixture (GODOTTPD_TEST_HANDLER_THREADS=0: inline).
        mode = os.environ.get("GODOTTPD_TEST_HANDLER_THREADS")
        if mode is not None:
            kwargs.setdefault("handler_threads", int(mode))
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(godottpd.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, json.dumps(kwargs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"port "):
            self.close()
            raise AssertionError(f"server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid

    def status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def rss_kib(self) -> int:
        return self.status("VmRSS")

    def threads(self) -> int:
        return self.status("Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def close(self) -> str:
        if self.closed:
            return ""
        self.closed = True
        err = ""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            err = self.proc.stderr.read().decode("utf-8", "replace")
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return err


@pytest.fixture
def server_process():
    procs: list[ServerProcess] = []

    def _start(**kwargs: Any) -> ServerProcess:
        p = ServerProcess(**kwargs)
        procs.append(p)
        return p

    yield _start
    for p in procs:
        p.close()


def _wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------- #
# (a) concurrent keep-alive load next to slowloris connections
# --------------------------------------------------------------------------- #


@pytest.mark.timeout(_budget(CONNECTIONS * PER_CONNECTION / 10000))
def test_concurrent_keepalive_load_with_slowloris(serve, make_router) -> None:
    def get(req: Any, res: Any) -> None:
        res.send(200, f"{req.parameters['c']}:{req.parameters['i']}:{req.query['q']}", "text/plain")

    def post(req: Any, res: Any) -> None:
        res.send_raw(200, req.body[::-1] + req.headers["x-tag"].encode())

    srv = serve(
        {"/r/:c/:i": make_router(get=get, post=post), "/": make_router(get=get)},
        header_timeout=2.0,
        keepalive_timeout=30.0,
        max_connections=CONNECTIONS + SLOWLORIS + 50,
    )
    port = srv.port
    start = threading.Barrier(CONNECTIONS + SLOWLORIS + 1)
    errors: list[str] = []
    answered = [0] * CONNECTIONS
    slow_result: list[tuple[str, float] | None] = [None] * SLOWLORIS
    lock = threading.Lock()

    def fail(msg: str) -> None:
        with lock:
            if len(errors) < 20:
                errors.append(msg)

    def worker(c: int) -> None:
        try:
            conn = Conn(port)
        except OSError as exc:
            start.wait()
            fail(f"conn {c}: connect failed: {exc!r}")
            return
        try:
            start.wait()
            for i in range(PER_CONNECTION):
                if i % 2:
                    body = f"body-{c}-{i}-".encode() * (1 + i % 7)
                    req = (
                        f"POST /r/{c}/{i} HTTP/1.1\r\nHost: x\r\nX-Tag: t{c}.{i}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n"
                    ).encode() + body
                    want = body[::-1] + f"t{c}.{i}".encode()
                else:
                    req = f"GET /r/{c}/{i}?q={i * 7} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                    want = f"{c}:{i}:{i * 7}".encode()
                conn.sock.sendall(req)
                ((status, _head, body_got),) = conn.read_responses(1)
                if status != 200 or body_got != want:
                    fail(f"conn {c} req {i}: {status} {body_got[:80]!r} != {want[:80]!r}")
                    return
                answered[c] += 1
        except Exception as exc:
            fail(f"conn {c}: {exc!r} after {answered[c]} answers")
        finally:
            conn.close()

    def slowloris(k: int) -> None:
        payload = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 200
        try:
            s = socket.create_connection((HOST, port), timeout=10)
        except OSError as exc:
            start.wait()
            slow_result[k] = (f"connect failed {exc!r}", 0.0)
            return
        try:
            start.wait()
            t0 = time.monotonic()
            for b in payload:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    slow_result[k] = ("closed", time.monotonic() - t0)
                    return
                readable, _, _ = select.select([s], [], [], 0.5)
                if readable:
                    try:
                        data = s.recv(4096)
                    except ConnectionResetError:
                        data = b""
                    elapsed = time.monotonic() - t0
                    if not data:
                        slow_result[k] = ("closed", elapsed)
                        return
                    status = data.split(b" ", 2)[1].decode("latin-1") if b" " in data else "?"
                    # After the 408 the server must close.
                    s.settimeout(3)
                    try:
                        while s.recv(4096):
                            pass
                        closed = True
                    except ConnectionResetError:
                        closed = True
                    except (socket.timeout, TimeoutError):
                        closed = False
                    slow_result[k] = (status if closed else f"{status}-left-open", elapsed)
                    return
                if time.monotonic() - t0 > 20:
                    break
            slow_result[k] = ("never cut off", time.monotonic() - t0)
        finally:
            s.close()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(CONNECTIONS)]
    threads += [
        threading.Thread(target=slowloris, args=(k,), daemon=True) for k in range(SLOWLORIS)
    ]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    deadline = t0 + _budget(CONNECTIONS * PER_CONNECTION / 10000) - 10
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "client threads still running"
    assert errors == [], errors
    assert sum(answered) == CONNECTIONS * PER_CONNECTION
    for k, res in enumerate(slow_result):
        assert res is not None, f"slowloris {k}: no result"
        outcome, when = res
        assert outcome in ("408", "closed"), f"slowloris {k}: {outcome} after {when:.1f}s"
        assert when < 2.0 + 2.0, f"slowloris {k} kept {when:.1f}s with header_timeout=2"
    # The server still serves a new client after the load.
    conn = Conn(port)
    conn.sock.sendall(b"GET /r/1/2?q=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.read_responses(1)[0][2] == b"1:2:3"
    conn.close()
    print(
        f"\n{CONNECTIONS * PER_CONNECTION} requests on {CONNECTIONS} connections in {elapsed:.1f}s"
    )


# --------------------------------------------------------------------------- #
# (b) many pipelined requests: resident memory stays flat
# --------------------------------------------------------------------------- #


def _api_request(i: int) -> tuple[bytes, dict[str, Any]]:
    if i % 5 == 0:
        req = (f"GET /api/g{i}?a={i}&z=%20{i} HTTP/1.1\r\nHost: x\r\nX-N: {i}\r\n\r\n").encode()
        return req, {"id": f"g{i}", "a": str(i), "n": str(i), "len": 0}
    body = json.dumps({"k": i, "pad": "p" * (i % 300)}).encode()
    req = (
        f"POST /api/{i}?a={i}&b=two HTTP/1.1\r\nHost: x\r\nX-N: {i}\r\n"
        f"User-Agent: soak/{i % 10}\r\nCookie: s={i}; t=v\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    want = {
        "id": str(i),
        "a": str(i),
        "n": str(i),
        "ua": f"soak/{i % 10}",
        "len": len(body),
        "k": i,
        "cookies": {"s": str(i), "t": "v"},
    }
    return req, want


@pytest.mark.timeout(_budget(REQUESTS / 200000))
def test_many_requests_do_not_grow_server_memory(server_process) -> None:
    srv = server_process()
    n_conns = 4
    batch = 50
    warmup = max(REQUESTS // 10, 2000)
    counter = iter(range(REQUESTS + warmup))
    counter_lock = threading.Lock()
    errors: list[str] = []
    done = [0]

    def next_batch() -> list[int]:
        with counter_lock:
            out = []
            for _ in range(batch):
                try:
                    out.append(next(counter))
                except StopIteration:
                    break
            return out

    def client(limit: int) -> None:
        conn = Conn(srv.port)
        try:
            while True:
                with counter_lock:
                    if done[0] >= limit:
                        return
                ids = next_batch()
                if not ids:
                    return
                reqs = [_api_request(i) for i in ids]
                conn.sock.sendall(b"".join(r for r, _ in reqs))
                responses = conn.read_responses(len(ids))
                for (i, (_, want)), (status, head, body) in zip(zip(ids, reqs), responses):
                    if status != 200:
                        errors.append(f"request {i}: {status} {body[:100]!r}")
                        return
                    got = json.loads(body)
                    if got != want:
                        errors.append(f"request {i}: {got} != {want}")
                        return
                    if i % 5 and f"\r\nX-Echo: {i}\r\n".encode() not in head:
                        errors.append(f"request {i}: no X-Echo in {head!r}")
                        return
                with counter_lock:
                    done[0] += len(ids)
        except Exception as exc:
            errors.append(f"client: {exc!r}")
        finally:
            conn.close()

    def run(limit: int) -> None:
        threads = [
            threading.Thread(target=client, args=(limit,), daemon=True) for _ in range(n_conns)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(_budget(REQUESTS / 200000) - 5)
        assert not any(t.is_alive() for t in threads), "client threads still running"
        assert errors == [], errors[:5]

    # Warm up: allocator pools, handler threads, interned strings.
    run(warmup)
    time.sleep(0.3)
    base_rss, base_fds, base_threads = srv.rss_kib(), srv.fds(), srv.threads()
    t0 = time.monotonic()
    samples = [base_rss]
    sampler_stop = threading.Event()

    def sampler() -> None:
        while not sampler_stop.wait(0.5):
            try:
                samples.append(srv.rss_kib())
            except (OSError, KeyError):
                return

    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    try:
        run(REQUESTS + warmup)
    finally:
        sampler_stop.set()
        st.join(2)
    elapsed = time.monotonic() - t0
    assert done[0] >= REQUESTS + warmup - batch * n_conns, done[0]
    time.sleep(0.5)
    end_rss = srv.rss_kib()
    growth_mib = (end_rss - base_rss) / 1024
    peak_mib = (max(samples) - base_rss) / 1024
    print(
        f"\n{done[0] - warmup} requests in {elapsed:.1f}s; RSS {base_rss / 1024:.1f} -> "
        f"{end_rss / 1024:.1f} MiB (peak +{peak_mib:.1f}); fds {base_fds} -> {srv.fds()}; "
        f"threads {base_threads} -> {srv.threads()}"
    )
    assert growth_mib < RSS_BOUND_MIB, (
        f"server RSS grew {growth_mib:.1f} MiB over {done[0] - warmup} requests "
        f"({base_rss} -> {end_rss} KiB, samples {samples})"
    )
    # The client connections are closed: fds and threads go back to the baseline.
    assert _wait_for(lambda: srv.fds() <= base_fds, 10), (base_fds, srv.fds())
    assert srv.threads() <= base_threads, (base_threads, srv.threads())
    assert "Traceback" not in srv.close()


# --------------------------------------------------------------------------- #
# (c) connection churn: the server's fd count returns to the baseline
# --------------------------------------------------------------------------- #


@pytest.mark.timeout(_budget(CYCLES / 5000))
def test_connection_churn_does_not_leak_fds(server_process) -> None:
    srv = server_process(keepalive_timeout=30.0, header_timeout=30.0)
    port = srv.port

    def one(kind: int, i: int) -> None:
        s = socket.create_connection((HOST, port), timeout=10)
        try:
            if kind == 5:  # connect and leave
                return
            if kind == 6:  # half a head, then leave
                s.sendall(b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-Pa")
                return
            if kind == 7:  # half a body, then reset
                s.sendall(
                    b"POST /api/7 HTTP/1.1\r\nHost: x\r\nX-N: 1\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"k"'
                )
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            close = "Connection: close\r\n" if kind == 0 else ""
            s.sendall(f"GET /api/{i}?a=1 HTTP/1.1\r\nHost: x\r\n{close}\r\n".encode())
            conn = Conn.__new__(Conn)
            conn.sock, conn.buf = s, b""
            ((status, _, body),) = conn.read_responses(1)
            assert status == 200, (kind, i, status, body)
            assert json.loads(body)["id"] == str(i)
            if kind == 0:
                assert s.recv(1) == b"", "Connection: close not honoured"
            elif kind == 2:  # abortive close (RST) after the response
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == 3:  # shut down writing first, then wait for the server to close
                s.shutdown(socket.SHUT_WR)
                assert s.recv(1) == b""
            elif kind == 4:  # a second request on the same connection, then close
                s.sendall(f"GET /api/{i}b HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                ((status, _, body),) = conn.read_responses(1)
                assert status == 200 and json.loads(body)["id"] == f"{i}b"
        finally:
            s.close()

    # Warm up and take the baseline once the server is idle.
    for i in range(50):
        one(i % 5, i)
    base_fds, base_threads = _wait_stable(srv), srv.threads()
    t0 = time.monotonic()
    for i in range(CYCLES):
        one(i % 8, i)
    elapsed = time.monotonic() - t0
    settled = _wait_for(lambda: srv.fds() <= base_fds, 10, 0.1)
    print(
        f"\n{CYCLES} connections in {elapsed:.1f}s; fds {base_fds} -> {srv.fds()}; "
        f"threads {base_threads} -> {srv.threads()}"
    )
    assert settled, f"server fds did not return to {base_fds}: {srv.fds()} open"
    assert srv.threads() <= base_threads
    # Still serving.
    one(1, 424242)
    assert "Traceback" not in srv.close()


def _wait_stable(srv: ServerProcess) -> int:
    """The server's fd count once it stopped changing for 0.3 s."""
    last = srv.fds()
    while True:
        time.sleep(0.3)
        now = srv.fds()
        if now == last:
            return now
        last = now
