"""Shared fixtures for the godottpd test suite.

Every test talks to a real server over real sockets:

* ``serve(routes, cors=None, **server_kwargs)`` starts an ``HttpServer`` on
  ``127.0.0.1`` with a free port, registers the routes (in order) and stops the
  server at teardown.
* ``make_router(get=fn, post=fn, ...)`` builds an ``HttpRouter`` subclass whose
  ``handle_<method>`` calls ``fn(request, response)``. In a test marked ``async_too`` (or
  a module with that ``pytestmark``) it runs twice: with plain methods, and with
  ``async def`` ones that call ``fn`` on the server's event loop.
* ``probe(fn)`` builds a router that runs ``fn(request)`` inside the handler,
  keeps the result (or the exception) for the test, and answers ``200 probed``.
* ``raw(server)`` opens a raw TCP connection with exact-bytes helpers and a
  small HTTP/1.1 response parser (Content-Length, chunked, read-to-close).
* ``fetch(server, method, path, body=None, headers=None)`` does one request with
  ``http.client`` on a fresh connection.
"""

from __future__ import annotations

import http.client
import os
import queue
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from godottpd import HttpRouter, HttpServer
from hypothesis import settings

HOST = "127.0.0.1"

# Never write a hypothesis example database outside tests/.
settings.register_profile("godottpd", database=None, deadline=None)
settings.load_profile("godottpd")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    inline = os.environ.get("GODOTTPD_TEST_HANDLER_THREADS") == "0"
    for item in items:
        if inline and item.get_closest_marker("concurrent_handlers"):
            item.add_marker(pytest.mark.skip(reason="needs handlers running side by side"))
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("handler_kind") != "async":
            continue
        only = item.get_closest_marker("sync_only")
        if only:
            item.add_marker(pytest.mark.skip(reason=str(only.args[0])))
        elif item.get_closest_marker("concurrent_handlers"):
            # Its handlers block (threading.Event), which would block the one event loop.
            item.add_marker(pytest.mark.skip(reason="blocking handlers share one event loop"))
    # Hypothesis' failure report touches mypy_extensions.TypedDict, which warns; with
    # filterwarnings=error that would turn a readable failure into an INTERNALERROR.
    for item in items:
        item.add_marker(
            pytest.mark.filterwarnings(
                "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
            )
        )


# --------------------------------------------------------------------------- #
# Raw socket client
# --------------------------------------------------------------------------- #


class PeerClosed(ConnectionError):
    """The server closed the connection before a full response was read."""


@dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    head: bytes = b""
    chunked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has(self, name: str) -> bool:
        return bool(self.get_all(name))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class RawClient:
    """A TCP connection with its own buffer (socket.makefile breaks after a timeout)."""

    def __init__(
        self,
        port: int,
        host: str = HOST,
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # With `tls`, the same client speaks through TLS (handshake done here).
        self.sock = sock if tls is None else tls.wrap_socket(sock, server_hostname="localhost")
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    # -- low level ---------------------------------------------------------
    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readline(self, limit: int = 1 << 20) -> bytes:
        while True:
            idx = self.buf.find(b"\n")
            if idx >= 0:
                line = bytes(self.buf[: idx + 1])
                del self.buf[: idx + 1]
                return line
            if len(self.buf) > limit:
                raise AssertionError("line too long in response")
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise PeerClosed(f"connection closed after {len(self.buf)} of {n} body bytes")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until_close(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    # -- HTTP --------------------------------------------------------------
    def read_response(self, method: str = "GET", timeout: float | None = None) -> RawResponse:
        """Read exactly one response (a 1xx interim response counts as one)."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        line = self.readline()
        if not line:
            raise PeerClosed("connection closed before a response")
        head = line
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError(f"bad status line: {line!r}")
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: list[tuple[str, str]] = []
        while True:
            hline = self.readline()
            if not hline:
                raise PeerClosed("connection closed inside the response head")
            head += hline
            if hline in (b"\r\n", b"\n"):
                break
            name, sep, value = hline.rstrip(b"\r\n").partition(b":")
            if not sep:
                raise AssertionError(f"bad header line: {hline!r}")
            headers.append(
                (name.decode("latin-1"), value.decode("utf-8", "surrogateescape").strip(" \t"))
            )
        resp = RawResponse(version, status, reason, headers, b"", head)
        te = (resp.get("transfer-encoding") or "").lower()
        cl = resp.get("content-length")
        if method.upper() == "HEAD" or status < 200 or status in (204, 304):
            body = b""
        elif "chunked" in te:
            resp.chunked = True
            body = self._read_chunked()
        elif cl is not None:
            body = self.read_exact(int(cl))
        else:
            body = self.read_until_close()
        resp.body = body
        return resp

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size_line = self.readline()
            if not size_line:
                raise PeerClosed("closed inside chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += self.read_exact(size)
            self.read_exact(2)

    def request(self, data: bytes, method: str | None = None) -> RawResponse:
        """Send bytes and read one final response (skipping 100 Continue)."""
        self.send(data)
        if method is None:
            method = data.split(b" ", 1)[0].decode("latin-1")
        while True:
            resp = self.read_response(method)
            if resp.status >= 200:
                return resp

    def is_closed(self, timeout: float = 3.0) -> bool:
        """True if the server closes the connection within ``timeout`` seconds.

        Unread bytes already buffered are ignored; any new byte means "still open".
        """
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.eof = True
                    return True
                self.buf += chunk
                return False
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self.eof = True
            return True
        except (socket.timeout, TimeoutError):
            return False
        finally:
            self.sock.settimeout(self.timeout)
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def build_request(
    method: str = "GET",
    path: str = "/",
    headers: Iterable[tuple[str, str]] | dict[str, str] = (),
    body: bytes = b"",
    version: str = "HTTP/1.1",
    content_length: bool = True,
) -> bytes:
    """Build a request with Host (HTTP/1.1) and Content-Length when there is a body."""
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {k.lower() for k, _ in hdrs}
    if version == "HTTP/1.1" and "host" not in names:
        hdrs.insert(0, ("Host", "localhost"))
    if (
        content_length
        and body
        and "content-length" not in names
        and ("transfer-encoding" not in names)
    ):
        hdrs.append(("Content-Length", str(len(body))))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode("latin-1") + body


# --------------------------------------------------------------------------- #
# Routers
# --------------------------------------------------------------------------- #

METHODS = ("get", "post", "head", "put", "patch", "delete", "options")

Handler = Callable[[Any, Any], None]


def _make_router(**handlers: Handler) -> HttpRouter:
    unknown = set(handlers) - set(METHODS)
    assert not unknown, f"unknown methods {unknown}"
    ns: dict[str, Any] = {}
    for meth, fn in handlers.items():

        def method(self: Any, request: Any, response: Any, _fn: Handler = fn) -> None:
            _fn(request, response)

        ns[f"handle_{meth}"] = method
    cls = type("TestRouter", (HttpRouter,), ns)
    return cls()


def _make_async_router(**handlers: Handler) -> HttpRouter:
    """``_make_router`` with coroutine handlers: each runs ``fn`` on the event loop."""
    unknown = set(handlers) - set(METHODS)
    assert not unknown, f"unknown methods {unknown}"
    ns: dict[str, Any] = {}
    for meth, fn in handlers.items():

        async def method(self: Any, request: Any, response: Any, _fn: Handler = fn) -> None:
            _fn(request, response)

        ns[f"handle_{meth}"] = method
    cls = type("AsyncTestRouter", (HttpRouter,), ns)
    return cls()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "make_router" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "async_too"
    ):
        metafunc.parametrize("handler_kind", ["sync", "async"], indirect=True)


class Probe(HttpRouter):
    """Runs ``self.fn(request)`` inside GET/POST/PUT/PATCH/DELETE and keeps the result."""

    fn: Callable[[Any], Any]
    results: queue.Queue[tuple[str, Any]]

    def _run(self, request: Any, response: Any) -> None:
        try:
            self.results.put(("ok", self.fn(request)))
        except BaseException as exc:
            self.results.put(("err", exc))
        response.send(200, "probed", "text/plain")

    handle_get = _run
    handle_post = _run
    handle_put = _run
    handle_patch = _run
    handle_delete = _run

    def result(self, timeout: float = 5.0) -> Any:
        kind, value = self.results.get(timeout=timeout)
        if kind == "err":
            raise value
        return value


def _make_probe(fn: Callable[[Any], Any]) -> Probe:
    p = Probe()
    p.fn = fn
    p.results = queue.Queue()
    return p


@pytest.fixture
def handler_kind(request: pytest.FixtureRequest) -> str:
    """``"sync"``, or ``"async"`` in the second run of an ``async_too`` test."""
    return str(getattr(request, "param", "sync"))


@pytest.fixture
def make_router(handler_kind: str) -> Callable[..., HttpRouter]:
    return _make_async_router if handler_kind == "async" else _make_router


@pytest.fixture
def probe() -> Callable[[Callable[[Any], Any]], Probe]:
    return _make_probe


# --------------------------------------------------------------------------- #
# Servers and clients
# --------------------------------------------------------------------------- #


@pytest.fixture
def serve() -> Iterable[Callable[..., HttpServer]]:
    servers: list[HttpServer] = []

    def _serve(
        routes: dict[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        cors: Any = None,
        start: bool = True,
        **kwargs: Any,
    ) -> HttpServer:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("bind_address", HOST)
        kwargs.setdefault("shutdown_grace", 2.0)
        # The suite runs once per handler mode: CI sets GODOTTPD_TEST_HANDLER_THREADS=0 for
        # the inline mode (handlers on the I/O thread), tests that need handlers to run
        # side by side are marked `concurrent_handlers` and skipped there.
        inline = os.environ.get("GODOTTPD_TEST_HANDLER_THREADS")
        if inline is not None and kwargs.get("threaded", True):
            kwargs.setdefault("handler_threads", int(inline))
        srv = HttpServer(**kwargs)
        servers.append(srv)
        items = routes.items() if isinstance(routes, dict) else routes
        for path, router in items:
            srv.register_router(path, router)
        if cors is not None:
            if isinstance(cors, dict):
                srv.enable_cors(**cors)
            else:
                srv.enable_cors(cors)
        if start:
            srv.start()
        return srv

    yield _serve
    for srv in reversed(servers):
        srv.stop()


def _port(target: Any) -> int:
    return target if isinstance(target, int) else int(target.port)


@pytest.fixture
def raw() -> Iterable[Callable[..., RawClient]]:
    clients: list[RawClient] = []

    def _raw(target: Any, timeout: float = 5.0) -> RawClient:
        c = RawClient(_port(target), timeout=timeout)
        clients.append(c)
        return c

    yield _raw
    for c in clients:
        c.close()


@dataclass
class FetchResult:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    version: int

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def _fetch(
    target: Any,
    method: str = "GET",
    path: str = "/",
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> FetchResult:
    conn = http.client.HTTPConnection(HOST, _port(target), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return FetchResult(r.status, r.reason, r.headers, data, r.version)
    finally:
        conn.close()


@pytest.fixture
def fetch() -> Callable[..., FetchResult]:
    return _fetch


@pytest.fixture
def build() -> Callable[..., bytes]:
    return build_request


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Test certificates (``tests/tls_support.py``): a root, an intermediate, RSA and ECDSA
    server certificates for localhost, game.test, 127.0.0.1 and ::1."""
    from tls_support import make_certificates

    return make_certificates(tmp_path_factory.mktemp("tls"))


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns a truthy value or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def wait() -> Callable[..., Any]:
    return wait_for
