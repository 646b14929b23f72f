"""Strict HTTP/1.1 message syntax and framing (RFC 9112), over real sockets.

Every rejected request is checked for: the status, ``Connection: close``, the server
closing the connection with nothing after the error response (so bytes that follow are
never read as another request), no handler having run, and a fresh client being served.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@dataclass
class App:
    srv: Any
    calls: list[tuple[str, str]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, req: Any) -> None:
        with self.lock:
            self.calls.append((req.method, req.path))
            self.requests.append(
                {
                    "method": req.method,
                    "path": req.path,
                    "query": dict(req.query),
                    "headers": dict(req.headers.items()),
                    "body": req.body,
                    "http_version": req.http_version,
                    "host": req.host,
                }
            )


@pytest.fixture
def make_app(serve, make_router) -> Any:
    """``make_app(**server_kwargs)``: ``/secret``, ``/p`` and ``/`` record every request they
    run; GET answers ``"<METHOD> <path>"``, POST echoes the body."""

    def _make_app(**kwargs: Any) -> App:
        holder: dict[str, App] = {}

        def get(req: Any, res: Any) -> None:
            holder["app"].record(req)
            res.send(200, f"{req.method} {req.path}", "text/plain")

        def post(req: Any, res: Any) -> None:
            holder["app"].record(req)
            res.send_raw(200, req.body, "application/octet-stream")

        def router() -> Any:
            return make_router(get=get, post=post, put=post)

        srv = serve({"/secret": router(), "/p": router(), "/": router()}, **kwargs)
        holder["app"] = App(srv)
        return holder["app"]

    return _make_app


@pytest.fixture
def app(make_app) -> App:
    return make_app()


def _next_client_ok(app: App, raw: Any, build: Any) -> None:
    """A new, well-behaved client is served after the failure."""
    before = len(app.calls)
    c = raw(app.srv)
    r = c.request(build("GET", "/p"))
    assert r.status == 200
    assert r.body == b"GET /p"
    # Keep-alive still works for it.
    r = c.request(build("GET", "/"))
    assert r.status == 200
    assert r.body == b"GET /"
    assert app.calls[before:] == [("GET", "/p"), ("GET", "/")]


def expect_rejected(
    app: App, raw: Any, build: Any, data: bytes, status: int | tuple[int, ...] = 400
) -> Any:
    """Send ``data`` at once; the server must answer ``status``, close, run no handler."""
    statuses = (status,) if isinstance(status, int) else status
    c = raw(app.srv)
    c.send(data)
    r = c.read_response(timeout=5)
    assert r.status in statuses, f"{data!r}: got {r.status} {r.body!r}, want {statuses}"
    assert (r.get("connection") or "").lower() == "close", r.head
    # Nothing after the error response, then EOF: a smuggled request got no answer.
    assert bytes(c.buf) == b"", f"bytes after the error response: {bytes(c.buf)!r}"
    assert c.is_closed(timeout=3), f"{data!r}: connection left open after {r.status}"
    assert bytes(c.buf) == b"", f"bytes after the error response: {bytes(c.buf)!r}"
    assert app.calls == [], f"{data!r}: a handler ran: {app.calls}"
    _next_client_ok(app, raw, build)
    assert ("GET", "/secret") not in app.calls
    return r


H = b"Host: x\r\n"


# --------------------------------------------------------------------------- #
# Tokens, field lines, whitespace, control bytes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"G(T / HTTP/1.1\r\n" + H + b"\r\n", id="method-paren"),
        pytest.param(b"GE@T / HTTP/1.1\r\n" + H + b"\r\n", id="method-at"),
        pytest.param(b"GET{ / HTTP/1.1\r\n" + H + b"\r\n", id="method-brace"),
        pytest.param(b"GE\x00T / HTTP/1.1\r\n" + H + b"\r\n", id="method-nul"),
        pytest.param(b"GET\x7f / HTTP/1.1\r\n" + H + b"\r\n", id="method-del"),
        pytest.param(b"G\xc3\xa9T / HTTP/1.1\r\n" + H + b"\r\n", id="method-non-ascii"),
        pytest.param(b" GET / HTTP/1.1\r\n" + H + b"\r\n", id="request-line-leading-sp"),
        pytest.param(b"GET  / HTTP/1.1\r\n" + H + b"\r\n", id="request-line-double-sp"),
        pytest.param(b"GET / HTTP/1.1 \r\n" + H + b"\r\n", id="request-line-trailing-sp"),
        pytest.param(b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", id="target-control-byte"),
        pytest.param(b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", id="target-with-space"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X(y: v\r\n\r\n", id="name-paren"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X@y: v\r\n\r\n", id="name-at"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b'X"y: v\r\n\r\n', id="name-dquote"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X/y: v\r\n\r\n", id="name-slash"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X\x7fy: v\r\n\r\n", id="name-del"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X\x00y: v\r\n\r\n", id="name-nul"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X\xc3\xa9: v\r\n\r\n", id="name-non-ascii"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b": v\r\n\r\n", id="name-empty"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A : v\r\n\r\n", id="sp-before-colon"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A\t: v\r\n\r\n", id="htab-before-colon"),
        pytest.param(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", id="sp-before-colon-host"),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
            id="sp-before-colon-content-length",
        ),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: v\r\n w\r\n\r\n", id="obs-fold-sp"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: v\r\n\tw\r\n\r\n", id="obs-fold-htab"),
        pytest.param(b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", id="ws-before-first-field"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", id="value-bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\r\n\r\n", id="value-cr-before-crlf"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", id="value-nul"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", id="value-0x01"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x0bb\r\n\r\n", id="value-vt"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x1fb\r\n\r\n", id="value-0x1f"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", id="value-del"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: \x00\r\n\r\n", id="value-only-nul"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", id="host-nul"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\nb\r\n\r\n", id="value-bare-lf"),
        pytest.param(b"GET / HTTP/1.1\n" + H + b"\r\n", id="request-line-bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"\n", id="blank-line-bare-lf"),
        pytest.param(
            b"POST /secret HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\nhello",
            id="content-length-after-bare-lf",
        ),
    ],
)
def test_bad_syntax_is_400_and_closed(app, raw, build, data) -> None:
    expect_rejected(app, raw, build, data, 400)


# --------------------------------------------------------------------------- #
# Host
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="missing"),
        pytest.param(b"GET / HTTP/1.1\r\nX-Host: x\r\n\r\n", id="missing-lookalike"),
        pytest.param(b"GET http://x/ HTTP/1.1\r\n\r\n", id="missing-absolute-form"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", id="two-different"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", id="two-same"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nhOST: x\r\n\r\n", id="two-case"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x, y\r\n\r\n", id="list-value"),
        pytest.param(b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", id="two-http10"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", id="invalid-space"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", id="invalid-slash"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", id="invalid-userinfo"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x:abc\r\n\r\n", id="invalid-port"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", id="invalid-ipv6"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", id="invalid-question"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", id="invalid-hash"),
        pytest.param(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", id="invalid-http10"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", id="junk-after-bracket"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [127.0.0.1:80]\r\n\r\n", id="ipv4-port-in-brackets"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\n\r\n", id="ipv4-in-brackets"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [::1]:8a\r\n\r\n", id="bracket-bad-port"),
        pytest.param(
            b"GET http://u@h/p HTTP/1.1\r\nHost: h\r\n\r\n", id="userinfo-in-absolute-form"
        ),
    ],
)
def test_bad_host_is_400_and_closed(app, raw, build, data) -> None:
    expect_rejected(app, raw, build, data, 400)


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"example.com:8080",
        b"127.0.0.1:80",
        b"[::1]:8080",
        b"x-y.z",
        b"[::ffff:1.2.3.4]",
        b"[v1.fe:x]:80",
    ],
)
def test_valid_host_is_accepted(app, raw, host) -> None:
    c = raw(app.srv)
    r = c.request(b"GET /p HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert r.status == 200
    assert app.requests[0]["headers"]["host"] == host.decode()


def test_http10_without_host_is_accepted(app, raw) -> None:
    c = raw(app.srv)
    r = c.request(b"GET /p HTTP/1.0\r\n\r\n")
    assert r.status == 200
    assert r.body == b"GET /p"


# --------------------------------------------------------------------------- #
# Versions
# --------------------------------------------------------------------------- #


def test_http20_is_505_and_closed(app, raw, build) -> None:
    r = expect_rejected(app, raw, build, b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505)
    assert r.reason == "HTTP Version Not Supported"


@pytest.mark.parametrize(
    "version", [b"HTTP/3.0", b"HTTP/0.9", b"HTTP/9.9", b"HTTP/1.10", b"HTTP/2.1"]
)
def test_other_versions_are_505_or_400_and_closed(app, raw, build, version) -> None:
    expect_rejected(app, raw, build, b"GET / " + version + b"\r\n" + H + b"\r\n", (505, 400))


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/1.9"])
def test_higher_http1_minor_is_answered_as_http11(app, raw, version) -> None:
    """RFC 9110 §2.5: a higher minor version of HTTP/1 is processed as HTTP/1.1."""
    c = raw(app.srv)
    r = c.request(b"GET /p HTTP/1.1\r\n".replace(b"HTTP/1.1", version) + H + b"\r\n")
    assert (r.version, r.status) == ("HTTP/1.1", 200)
    assert app.requests[-1]["http_version"] == "HTTP/1.1"
    assert c.request(b"GET /p HTTP/1.1\r\n" + H + b"\r\n").status == 200  # kept alive


# --------------------------------------------------------------------------- #
# Request target forms
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n", id="authority"),
        pytest.param(
            b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n",
            id="connect-authority",
        ),
        pytest.param(b"GET * HTTP/1.1\r\n" + H + b"\r\n", id="get-asterisk"),
        pytest.param(b"HEAD * HTTP/1.1\r\n" + H + b"\r\n", id="head-asterisk"),
        pytest.param(b"POST * HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", id="post-asterisk"),
        pytest.param(b"GET p HTTP/1.1\r\n" + H + b"\r\n", id="relative"),
        pytest.param(b"GET ?x=1 HTTP/1.1\r\n" + H + b"\r\n", id="query-only"),
    ],
)
def test_bad_request_target_is_400_and_closed(app, raw, build, data) -> None:
    expect_rejected(app, raw, build, data, 400)


def test_absolute_form_is_routed_by_its_path(app, raw, build) -> None:
    c = raw(app.srv)
    r = c.request(b"GET http://host/p?x=1 HTTP/1.1\r\nHost: host\r\n\r\n")
    assert r.status == 200
    assert r.body == b"GET /p"
    assert app.requests[-1]["path"] == "/p"
    assert app.requests[-1]["query"] == {"x": "1"}
    # Still keep-alive, and the next absolute-form request (other authority) works too.
    r = c.request(b"GET http://other.example:8080/secret HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 200
    assert r.body == b"GET /secret"
    # RFC 9112 §3.2.2: the target's authority wins over Host, for host and headers alike.
    assert app.requests[-1]["host"] == "other.example:8080"
    assert app.requests[-1]["headers"]["host"] == "other.example:8080"
    r = c.request(b"GET https://host HTTP/1.1\r\nHost: host\r\n\r\n")
    assert r.status == 200
    assert r.body == b"GET /"


def test_options_asterisk_is_204_with_allow(app, raw, build) -> None:
    c = raw(app.srv)
    r = c.request(b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n")
    assert r.status == 204
    allow = {m.strip() for m in (r.get("allow") or "").split(",") if m.strip()}
    assert {"GET", "HEAD", "POST", "OPTIONS"} <= allow, r.get("allow")
    assert not r.has("content-length") or r.get("content-length") == "0"
    assert app.calls == []
    # No body was sent and the connection is still usable.
    r = c.request(build("GET", "/p"))
    assert r.status == 200
    assert r.body == b"GET /p"


@pytest.mark.parametrize(
    "line, want",
    [
        (b"X-A:   v  ", "v"),
        (b"X-A:v", "v"),
        (b"X-A:\t v \t", "v"),
        (b"X-A:  a  b  ", "a  b"),
        (b"X-A:   ", ""),
    ],
)
def test_optional_whitespace_around_values_is_trimmed(app, raw, line, want) -> None:
    c = raw(app.srv)
    r = c.request(b"GET /p HTTP/1.1\r\n" + H + line + b"\r\n\r\n")
    assert r.status == 200
    assert app.requests[-1]["headers"]["x-a"] == want


# --------------------------------------------------------------------------- #
# Framing: request smuggling
# --------------------------------------------------------------------------- #

SMUGGLED = b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n0\r\n\r\n" + SMUGGLED,
            id="cl-then-te",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
            b"\r\n0\r\n\r\n" + SMUGGLED,
            id="te-then-cl",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 38\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n0\r\n\r\n" + SMUGGLED,
            id="cl-te-classic",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"
            b"\r\n" + (b"%x\r\n" % len(SMUGGLED)) + SMUGGLED + b"\r\n0\r\n\r\n",
            id="te-cl-classic",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n" + SMUGGLED,
            id="cl-zero-te",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n"
            + SMUGGLED,
            id="cl-cl-same",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Content-Length: 0\r\nContent-Length: 38\r\n\r\n"
            + SMUGGLED,
            id="cl-cl-different",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"
            b"\r\n0\r\n\r\n" + SMUGGLED,
            id="te-te-obfuscated",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
            id="te-space-before-colon",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding:\x0bchunked\r\n"
            b"\r\n0\r\n\r\n" + SMUGGLED,
            id="te-vertical-tab",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"X: y\r\n Transfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
            id="te-in-obs-fold",
        ),
    ],
)
def test_smuggling_attempt_is_400_and_rest_is_not_processed(app, raw, build, data) -> None:
    expect_rejected(app, raw, build, data, 400)
    assert ("GET", "/secret") not in app.calls


def test_error_in_pipeline_stops_the_pipeline(app, raw, build) -> None:
    """A good request, then a bad one, then another: 200, 400, close; the third never runs."""
    c = raw(app.srv)
    c.send(build("GET", "/p") + b"GET / HTTP/1.1\r\n" + H + b"X-A : v\r\n\r\n" + SMUGGLED)
    r1 = c.read_response(timeout=5)
    assert r1.status == 200
    assert r1.body == b"GET /p"
    r2 = c.read_response(timeout=5)
    assert r2.status == 400
    assert c.is_closed(timeout=3)
    assert bytes(c.buf) == b""
    assert app.calls == [("GET", "/p")]
    _next_client_ok(app, raw, build)
    assert ("GET", "/secret") not in app.calls


# --------------------------------------------------------------------------- #
# Framing: Transfer-Encoding
# --------------------------------------------------------------------------- #

CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "te",
    [
        b"gzip",
        b"identity",
        b"chunked, gzip",
        b"xchunked",
        b"chunked;q=1",
        b"chunked, chunked",
        b"",
    ],
)
def test_final_coding_not_chunked_is_400(app, raw, build, te) -> None:
    data = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + te + b"\r\n\r\n" + CHUNKED_HELLO
    expect_rejected(app, raw, build, data, 400)


def test_final_coding_not_chunked_across_lines_is_400(app, raw, build) -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
        b"\r\n" + CHUNKED_HELLO
    )
    expect_rejected(app, raw, build, data, 400)


@pytest.mark.parametrize("te", [b"gzip, chunked", b"deflate, chunked", b"br,chunked"])
def test_other_codings_before_chunked_are_501(app, raw, build, te) -> None:
    data = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + te + b"\r\n\r\n" + CHUNKED_HELLO
    r = expect_rejected(app, raw, build, data, 501)
    assert r.reason == "Not Implemented"


def test_other_coding_on_its_own_line_before_chunked_is_501(app, raw, build) -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n" + CHUNKED_HELLO
    )
    expect_rejected(app, raw, build, data, 501)


@pytest.mark.parametrize("te", [b"chunked", b"Chunked", b"CHUNKED", b"\tchunked \t"])
def test_chunked_is_case_insensitive_and_trimmed(app, raw, te) -> None:
    c = raw(app.srv)
    r = c.request(
        b"POST /p HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + te + b"\r\n\r\n" + CHUNKED_HELLO
    )
    assert r.status == 200
    assert r.body == b"hello"


@pytest.mark.parametrize("conn", [b"", b"Connection: keep-alive\r\n"])
def test_transfer_encoding_in_http10_is_400(app, raw, build, conn) -> None:
    data = (
        b"POST / HTTP/1.0\r\n"
        + conn
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + CHUNKED_HELLO
        + SMUGGLED
    )
    expect_rejected(app, raw, build, data, 400)


# --------------------------------------------------------------------------- #
# Framing: Content-Length
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(b"Content-Length: 5\r\nContent-Length: 5\r\n", id="repeated-same"),
        pytest.param(b"Content-Length: 5\r\nContent-Length: 6\r\n", id="repeated-different"),
        pytest.param(b"Content-Length: 5, 5\r\n", id="list-same"),
        pytest.param(b"Content-Length: 5,6\r\n", id="list-different"),
        pytest.param(b"Content-Length: +5\r\n", id="plus"),
        pytest.param(b"Content-Length: -5\r\n", id="minus"),
        pytest.param(b"Content-Length:  5 5\r\n", id="two-numbers"),
        pytest.param(b"Content-Length: 0x5\r\n", id="hex"),
        pytest.param(b"Content-Length: 5.0\r\n", id="decimal-point"),
        pytest.param(b"Content-Length: 5e0\r\n", id="exponent"),
        pytest.param(b"Content-Length: \r\n", id="empty"),
        pytest.param(b"Content-Length: \xd9\xa5\r\n", id="arabic-indic-digit"),
        pytest.param(b"Content-Length: 99999999999999999999999\r\n", id="overflow"),
        pytest.param(b"Content-Length: 18446744073709551616\r\n", id="overflow-2-64"),
    ],
)
def test_bad_content_length_is_400(app, raw, build, headers) -> None:
    data = b"POST / HTTP/1.1\r\n" + H + headers + b"\r\nhello!" + SMUGGLED
    expect_rejected(app, raw, build, data, 400)


def test_content_length_with_ows_and_leading_zero_is_accepted(app, raw) -> None:
    c = raw(app.srv)
    r = c.request(b"POST /p HTTP/1.1\r\n" + H + b"Content-Length:  05 \t\r\n\r\nhello")
    assert r.status == 200
    assert r.body == b"hello"


# --------------------------------------------------------------------------- #
# Framing: chunk sizes, extensions, trailers
# --------------------------------------------------------------------------- #

CHUNKED_HEAD = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="non-hex"),
        pytest.param(b"5g\r\nhello\r\n0\r\n\r\n", id="hex-then-junk"),
        pytest.param(b"-1\r\nhello\r\n0\r\n\r\n", id="negative"),
        pytest.param(b"+5\r\nhello\r\n0\r\n\r\n", id="leading-plus"),
        pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", id="0x-prefix"),
        pytest.param(b"\r\nhello\r\n0\r\n\r\n", id="empty-size"),
        pytest.param(b" 5\r\nhello\r\n0\r\n\r\n", id="leading-space"),
        pytest.param(b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n", id="overflow-2-64"),
        pytest.param(b"f" * 17 + b"\r\nhello\r\n0\r\n\r\n", id="overflow-17-digits"),
        pytest.param(b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n", id="overflow-40-digits"),
        pytest.param(b"5\r\nhelloXX0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(b"5\r\nhello0\r\n\r\n", id="data-runs-into-next-size"),
        pytest.param(b"3\r\nhello\r\n0\r\n\r\n", id="data-longer-than-size"),
        pytest.param(b"5\r\nhello\n0\r\n\r\n", id="bare-lf-after-data"),
        pytest.param(b"5 \r\nhello\r\n0\r\n\r\n", id="space-after-size"),
        pytest.param(b"5\t\r\nhello\r\n0\r\n\r\n", id="htab-after-size"),
        pytest.param(b"5 x\r\nhello\r\n0\r\n\r\n", id="space-then-junk-after-size"),
        pytest.param(b"5;a\x00\r\nhello\r\n0\r\n\r\n", id="extension-nul"),
        pytest.param(b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n", id="trailer-nul"),
        pytest.param(b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n", id="trailer-bare-cr"),
    ],
)
def test_bad_chunked_body_is_400(app, raw, build, body) -> None:
    expect_rejected(app, raw, build, CHUNKED_HEAD + body + SMUGGLED, 400)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"5 ;a=b\r\nhello\r\n0\r\n\r\n", id="bws-before-extension"),
        pytest.param(b"5;a=b\r\nhello\r\n0\r\n\r\n", id="extension"),
        pytest.param(b'5;a="q;x"\r\nhello\r\n0\r\n\r\n', id="quoted-extension"),
        pytest.param(b"5;" + b"a" * 8000 + b"\r\nhello\r\n0\r\n\r\n", id="8k-extension"),
        pytest.param(b"0000000005\r\nhello\r\n0\r\n\r\n", id="leading-zeros"),
        pytest.param(b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", id="two-chunks"),
    ],
)
def test_valid_chunked_bodies_are_accepted(app, raw, body) -> None:
    c = raw(app.srv)
    r = c.request(CHUNKED_HEAD.replace(b"POST /", b"POST /p") + body)
    assert r.status == 200
    assert r.body == b"hello"
    # Framing ended where it should: the connection is usable for the next request.
    r = c.request(b"GET /p HTTP/1.1\r\n" + H + b"\r\n")
    assert r.status == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"5;e=" + b"a" * 17000 + b"\r\nhello\r\n0\r\n\r\n", id="extension"),
        pytest.param(
            b"5\r\nhello\r\n0;" + b"a" * 17000 + b"\r\n\r\n", id="extension-on-last-chunk"
        ),
        pytest.param(b"5\r\nhello\r\n0\r\nX-T: " + b"a" * 17000 + b"\r\n\r\n", id="trailer"),
        pytest.param(
            b"5\r\nhello\r\n0\r\n"
            + b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 100) for i in range(200))
            + b"\r\n",
            id="many-trailers",
        ),
    ],
)
def test_too_long_chunk_extension_or_trailers_is_431(app, raw, build, body) -> None:
    expect_rejected(app, raw, build, CHUNKED_HEAD + body + SMUGGLED, 431)


def test_trailers_are_dropped_but_the_request_works(app, raw, build) -> None:
    c = raw(app.srv)
    body = (
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n"
        b"X-Trailer: t\r\nContent-Length: 99\r\nHost: evil\r\n\r\n"
    )
    r = c.request(CHUNKED_HEAD.replace(b"POST /", b"POST /p") + body)
    assert r.status == 200
    assert r.body == b"hello world"
    seen = app.requests[-1]
    assert seen["body"] == b"hello world"
    assert "x-trailer" not in seen["headers"]
    assert seen["headers"]["host"] == "x"
    assert "content-length" not in seen["headers"]
    # The connection continues right after the trailer section.
    r = c.request(build("GET", "/"))
    assert r.status == 200
    assert r.body == b"GET /"


@pytest.mark.parametrize(
    "trailer",
    [
        pytest.param(b"X-T : a\r\n", id="sp-before-colon"),
        pytest.param(b"X-T\t: a\r\n", id="htab-before-colon"),
        pytest.param(b"X(T: a\r\n", id="bad-token"),
        pytest.param(b"NoColon\r\n", id="no-colon"),
        pytest.param(b"X-T: a\r\n b\r\n", id="obs-fold"),
    ],
)
def test_malformed_trailer_field_line_is_400(app, raw, build, trailer) -> None:
    """Trailer lines are field lines (RFC 9112 section 7.1.2): the same syntax rules apply as
    in the head; the server already rejects control bytes there."""
    data = CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n" + SMUGGLED
    expect_rejected(app, raw, build, data, 400)


# --------------------------------------------------------------------------- #
# Chunk sizes near 2**64 cannot wrap the body limit
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(b"ffffffffffffffff\r\n", id="max-u64"),
        pytest.param(b"5\r\nhello\r\nfffffffffffffffc\r\n", id="sum-wraps-to-1"),
        pytest.param(b"5\r\nhello\r\nfffffffffffffffb\r\n", id="sum-wraps-to-0"),
        pytest.param(b"5\r\nhello\r\n8000000000000000\r\n", id="2-63"),
    ],
)
def test_huge_chunk_size_still_hits_the_body_limit(make_app, raw, build, start) -> None:
    """A chunk size whose addition to the body length would overflow must still count
    against max_body_size: 413 once more than the limit arrived, then close."""
    app = make_app(max_body_size=100)
    c = raw(app.srv)
    c.send(CHUNKED_HEAD + start)
    got_reply = False
    for _ in range(50):
        try:
            c.send(b"x" * 1000)
        except OSError:
            got_reply = True
            break
        if not c.is_closed(timeout=0.05) and c.buf:
            got_reply = True
            break
        if c.eof:
            got_reply = True
            break
    assert got_reply, "server kept reading a chunked body 500x over max_body_size"
    r = c.read_response(timeout=5)
    assert r.status == 413
    assert c.is_closed(timeout=3)
    assert app.calls == []
    _next_client_ok(app, raw, build)


# --------------------------------------------------------------------------- #
# The same rejections when the bytes arrive in small pieces
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data, status",
    [
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n0\r\n\r\n" + SMUGGLED,
            400,
            id="cl-te",
        ),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: v\r\n w\r\n\r\n", 400, id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A : v\r\n\r\n", 400, id="sp-before-colon"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400, id="bare-cr"),
        pytest.param(CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n" + SMUGGLED, 400, id="chunk-no-crlf"),
        pytest.param(CHUNKED_HEAD + b"f" * 17 + b"\r\nhello\r\n0\r\n\r\n", 400, id="chunk-17"),
        pytest.param(b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, id="http2"),
    ],
)
def test_rejection_does_not_depend_on_packet_boundaries(app, raw, build, data, status) -> None:
    c = raw(app.srv)
    for i in range(0, len(data), 3):
        try:
            c.send(data[i : i + 3])
        except OSError:
            break  # the server answered and closed early: fine
        time.sleep(0.002)
    r = c.read_response(timeout=5)
    assert r.status == status, (data, r.status, r.body)
    assert c.is_closed(timeout=3)
    assert bytes(c.buf) == b""
    assert app.calls == []
    _next_client_ok(app, raw, build)


# --------------------------------------------------------------------------- #
# The error response survives a client that keeps sending
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            id="cl-te",
        ),
        pytest.param(b"POST / HTTP/1.1\r\n" + H + b"X-A : v\r\n\r\n", id="sp-before-colon"),
        pytest.param(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1, 2\r\n\r\n", id="bad-cl"),
    ],
)
def test_error_response_is_delivered_while_client_keeps_sending(app, raw, build, head) -> None:
    """Closing with unread request bytes must not reset the connection before the client
    reads the 400 (a lingering close): send the bad head and 2 MB more at once."""
    c = raw(app.srv, timeout=10)
    junk = b"x" * (2 * 1024 * 1024)

    def writer() -> None:
        try:
            c.sock.sendall(head + junk)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = c.read_response(timeout=10)
    assert r.status == 400
    assert c.is_closed(timeout=5)
    t.join(10)
    assert app.calls == []
    _next_client_ok(app, raw, build)
