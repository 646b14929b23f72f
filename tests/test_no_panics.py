"""No PanicException can be produced from Python: every pyclass entry point is called with
extreme ints, floats and strings, and each call either works or raises an ``Exception``.

``pyo3_runtime.PanicException`` derives from ``BaseException``, not ``Exception``, so a
panic escapes the ``except Exception`` below and fails the property.
"""

from __future__ import annotations

import queue
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from godottpd import HttpFileRouter, HttpRouter, HttpServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOST = "127.0.0.1"

EXTREME_INTS = st.one_of(
    st.sampled_from(
        [
            0,
            1,
            -1,
            2**15,
            2**16,
            2**31 - 1,
            2**31,
            2**32,
            2**63 - 1,
            2**63,
            2**64,
            -(2**63),
            2**200,
            -(2**200),
        ]
    ),
    st.integers(),
)
EXTREME_FLOATS = st.one_of(
    st.sampled_from(
        [
            0.0,
            -0.0,
            1e-300,
            5e-324,
            1e9,
            1e10,
            9.3e18,
            1.8e19,
            1e20,
            1e300,
            1.7976931348623157e308,
            -1e20,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)
EXTREME_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\r\n",
            "\ud800",
            "é",
            "a" * 100_000,
            "[",
            "^(",
            ":",
            "*",
            "/:a/:a",
            "^(?P<x>.*)$",
        ]
    ),
    st.text(),
)
ANY_VALUE = st.one_of(
    EXTREME_INTS, EXTREME_FLOATS, EXTREME_TEXT, st.booleans(), st.none(), st.binary()
)

NUMERIC_KEYWORDS = [
    "max_request_line",
    "max_head_size",
    "max_headers",
    "max_body_size",
    "max_connections",
    "io_threads",
    "handler_threads",
]
SECONDS_KEYWORDS = [
    "header_timeout",
    "body_timeout",
    "keepalive_timeout",
    "write_timeout",
    "shutdown_grace",
]

FAST = settings(max_examples=60, suppress_health_check=list(HealthCheck))


def survives(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:
        pass


@FAST
@given(
    keyword=st.sampled_from(
        ["port", *NUMERIC_KEYWORDS, *SECONDS_KEYWORDS, "bind_address", "server_identifier"]
    ),
    value=ANY_VALUE,
)
def test_http_server_constructor(keyword: str, value: Any) -> None:
    survives(lambda: HttpServer(**{keyword: value}))


@FAST
@given(name=st.sampled_from(["port", "bind_address", "server_identifier"]), value=ANY_VALUE)
def test_http_server_setters(name: str, value: Any) -> None:
    server = HttpServer(0)
    survives(lambda: setattr(server, name, value))


@FAST
@given(
    path=EXTREME_TEXT,
    methods=EXTREME_TEXT,
    headers=EXTREME_TEXT,
    origins=st.one_of(EXTREME_TEXT, st.lists(EXTREME_TEXT, max_size=3)),
)
def test_routes_and_cors(path: str, methods: str, headers: str, origins: Any) -> None:
    server = HttpServer(0)
    survives(lambda: server.register_router(path, HttpRouter()))
    survives(lambda: server.enable_cors(origins, methods, headers))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("panics")
    (root / "index.html").write_text("x")
    return root


@FAST
@given(
    index=ANY_VALUE,
    fallback=EXTREME_TEXT,
    extensions=st.lists(EXTREME_TEXT, max_size=3),
    cache_control=st.one_of(st.none(), EXTREME_TEXT),
)
def test_file_router(
    folder: Path, index: Any, fallback: str, extensions: list[str], cache_control: Any
) -> None:
    survives(
        lambda: HttpFileRouter(
            folder,
            index,
            fallback_page=fallback,
            extensions=extensions,
            cache_control=cache_control,
        )
    )
    survives(lambda: HttpFileRouter(folder, {"index_page": index, "extensions": extensions}))
    survives(lambda: HttpFileRouter(index))


@pytest.fixture(scope="module")
def poll_server() -> Iterator[HttpServer]:
    server = HttpServer(0, bind_address=HOST, threaded=False)
    server.start()
    yield server
    server.stop()


@settings(max_examples=40, suppress_health_check=list(HealthCheck))
@given(
    timeout=st.one_of(
        st.sampled_from([1e20, 1e300, 9.3e18, float("inf"), float("nan"), -1.0, 5e-324]),
        st.floats(),
    )
)
def test_poll(poll_server: HttpServer, timeout: float) -> None:
    if timeout == timeout and 1e-3 < timeout < float("inf"):
        timeout = -timeout  # waits that would block: the negative twin tests the check
    survives(lambda: poll_server.poll(timeout))


class Keeper(HttpRouter):
    """Hands each response (and request) to the test, which answers it from its thread."""

    def __init__(self) -> None:
        self.kept: queue.Queue[tuple[Any, Any]] = queue.Queue()

    def handle_get(self, request: Any, response: Any) -> None:
        self.kept.put((request, response))


@pytest.fixture(scope="module")
def exchange() -> Iterator[Callable[[], tuple[Any, Any, socket.socket]]]:
    keeper = Keeper()
    server = HttpServer(0, bind_address=HOST, handler_threads=1)
    server.register_router("/", keeper)
    server.start()
    sockets: list[socket.socket] = []

    def fresh() -> tuple[Any, Any, socket.socket]:
        sock = socket.create_connection((HOST, server.port), timeout=10)
        sockets.append(sock)
        sock.sendall(b"GET /?a=1 HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nX-A: v\r\n\r\n")
        request, response = keeper.kept.get(timeout=10)
        return request, response, sock

    yield fresh
    for sock in sockets:
        sock.close()
    server.stop()


@settings(max_examples=80, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["send", "send_raw", "json", "set", "cookie"]),
    first=ANY_VALUE,
    second=ANY_VALUE,
    third=ANY_VALUE,
    option=st.sampled_from(
        ["max-age", "expires", "sameSite", "secure", "partitioned", "domain", "path"]
    ),
)
def test_response_and_request_methods(
    exchange: Any, method: str, first: Any, second: Any, third: Any, option: str
) -> None:
    request, response, sock = exchange()
    if method == "cookie":
        survives(lambda: response.cookie(first, second, {option: third}))
        survives(lambda: response.cookie("a", "b", {option: first, "secure": True}))
    elif method == "set":
        survives(lambda: response.set(first, second))
    else:
        survives(lambda: getattr(response, method)(first, second, third))
        survives(lambda: getattr(response, method)(first, second))
    survives(lambda: response.send(200, "done"))
    for call in (
        lambda: request.query_all(first),
        lambda: request.headers.get(first),
        lambda: request.headers.get_all(first),
        lambda: request.headers[first],
        lambda: first in request.headers,
        lambda: request.text,
        lambda: request.host,
        lambda: request.get_body_parsed(),
        lambda: request.get_cookies(),
    ):
        survives(call)
    sock.close()


INT_CASES = [0, 1, -1, 2**16, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63), 2**200, True]
FLOAT_CASES = [
    0.0,
    5e-324,
    1e9,
    1e10,
    9.3e18,
    1.8e19,
    1e20,
    1e300,
    float("inf"),
    float("nan"),
    -1e20,
]


@pytest.mark.parametrize("keyword", ["port", *NUMERIC_KEYWORDS, *SECONDS_KEYWORDS])
def test_every_keyword_with_every_extreme(keyword: str) -> None:
    """The deterministic half: each numeric keyword with each extreme, started and stopped
    when it is accepted (a bound that only bites in start() or stop() is found too)."""
    for value in [*INT_CASES, *FLOAT_CASES]:
        try:
            server = HttpServer(**{"port": 0, "bind_address": HOST, keyword: value})
        except Exception:
            continue
        if keyword in ("max_connections", "io_threads", "handler_threads") and value > 64:
            continue  # accepted sizes that only cost threads or memory
        try:
            server.start()
        except Exception:
            continue
        server.stop()
