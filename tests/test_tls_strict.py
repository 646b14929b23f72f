"""The strict-parsing and limits tests, run again over TLS.

The tests are imported from ``test_strict`` and ``test_limits`` unchanged; this module's
``serve`` gives every server the test certificate and its ``raw`` speaks TLS, so each test
here runs through the TLS handshake and records instead of bare TCP. What they check (the
status, ``Connection: close``, nothing after the error, the close, the next client served)
must hold the same.

Left out: ``test_error_response_is_delivered_while_client_keeps_sending``, which reads and
writes one socket from two threads (an ``ssl.SSLSocket`` cannot be used so); its TLS
counterpart, from one thread, is below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from conftest import RawClient
from godottpd import HttpServer

# Imported tests (and the fixtures they use) are collected again in this module, where the
# fixtures below replace conftest's.
from test_limits import (  # noqa: F401
    ok_router,
    test_body_over_limit_is_413,
    test_body_timeout_closes_connection,
    test_busy_connection_outlives_keepalive_timeout,
    test_chunked_body_over_limit_is_413,
    test_client_that_never_reads_is_dropped_after_write_timeout,
    test_declared_huge_content_length_is_rejected_without_reading,
    test_expect_continue_with_oversized_body_gets_413_not_100,
    test_head_too_large_is_431,
    test_header_timeout_is_total_not_per_read,
    test_incomplete_head_gets_408_then_close,
    test_keepalive_timeout_closes_idle_connection,
    test_malformed_request_is_400_and_closed,
    test_max_connections_503_then_recovers,
    test_request_line_too_long_is_414,
    test_too_many_headers_is_431,
)
from test_strict import (  # noqa: F401
    app,
    make_app,
    test_bad_chunked_body_is_400,
    test_bad_content_length_is_400,
    test_bad_host_is_400_and_closed,
    test_bad_syntax_is_400_and_closed,
    test_error_in_pipeline_stops_the_pipeline,
    test_http20_is_505_and_closed,
    test_rejection_does_not_depend_on_packet_boundaries,
    test_smuggling_attempt_is_400_and_rest_is_not_processed,
    test_valid_chunked_bodies_are_accepted,
)


@pytest.fixture
def serve(serve: Callable[..., HttpServer], tls_certs: Any) -> Callable[..., HttpServer]:
    def _serve(routes: Any = (), **kwargs: Any) -> HttpServer:
        kwargs.setdefault("tls_cert", tls_certs.ec_chain)
        kwargs.setdefault("tls_key", tls_certs.ec_key)
        return serve(routes, **kwargs)

    return _serve


@pytest.fixture
def raw(tls_certs: Any) -> Iterable[Callable[..., RawClient]]:
    clients: list[RawClient] = []
    context = tls_certs.client_context()

    def _raw(target: Any, timeout: float = 5.0) -> RawClient:
        port = target if isinstance(target, int) else int(target.port)
        client = RawClient(port, timeout=timeout, tls=context)
        clients.append(client)
        return client

    yield _raw
    for client in clients:
        client.close()


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n",
    ],
    ids=["cl-te", "sp-before-colon"],
)
def test_error_response_is_delivered_after_unread_bytes(
    app: Any,  # noqa: F811
    raw: Any,
    build: Any,
    head: bytes,
) -> None:
    """The lingering close over TLS: the bad head and 512 KiB more in one write; the 400
    still arrives whole before the close."""
    client = raw(app.srv, timeout=10)
    client.send(head + b"x" * (512 * 1024))
    response = client.read_response(timeout=10)
    assert response.status == 400
    assert client.is_closed(timeout=5)
    assert app.calls == []
