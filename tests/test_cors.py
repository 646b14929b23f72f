"""CORS: off by default; allowed origins echoed with Vary; '*'; preflight answers."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.async_too

ALLOWED = "http://allowed.example"
OTHER = "http://other.example"


@pytest.fixture
def api(make_router):
    return make_router(
        get=lambda q, s: s.send(200, "get", "text/plain"),
        post=lambda q, s: s.send(201, "post", "text/plain"),
    )


def _acx(r: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in r.headers if k.lower().startswith("access-control-")}


def _vary(r: Any) -> set[str]:
    return {v.strip().lower() for line in r.get_all("vary") for v in line.split(",")}


def _preflight(method: str = "POST", origin: str = ALLOWED, extra: Any = ()) -> list:
    return [("Origin", origin), ("Access-Control-Request-Method", method), *extra]


# --------------------------------------------------------------------------- #
# Off by default
# --------------------------------------------------------------------------- #


def test_no_cors_headers_without_enable_cors(serve, api, raw, build) -> None:
    srv = serve({"/api": api})
    c = raw(srv)
    for data, method in (
        (build("GET", "/api", {"Origin": ALLOWED}), "GET"),
        (build("POST", "/api", {"Origin": "*"}, b"x"), "POST"),
        (build("GET", "/missing", {"Origin": ALLOWED}), "GET"),
        (build("OPTIONS", "/api", _preflight()), "OPTIONS"),
    ):
        r = c.request(data, method)
        assert _acx(r) == {}, (data, r.headers)


def test_preflight_without_cors_is_not_204(serve, api, raw, build) -> None:
    srv = serve({"/api": api})
    r = raw(srv).request(build("OPTIONS", "/api", _preflight()))
    assert r.status == 405
    assert _acx(r) == {}


# --------------------------------------------------------------------------- #
# Simple requests
# --------------------------------------------------------------------------- #


def test_allowed_origin_is_echoed_with_vary(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=[ALLOWED, "http://second.example"])
    c = raw(srv)
    r = c.request(build("GET", "/api", {"Origin": ALLOWED}))
    assert r.status == 200
    assert r.get_all("access-control-allow-origin") == [ALLOWED]
    assert "origin" in _vary(r)
    r = c.request(build("POST", "/api", {"Origin": "http://second.example"}, b"x"))
    assert r.status == 201
    assert r.get_all("access-control-allow-origin") == ["http://second.example"]


def test_disallowed_origin_gets_no_acao(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=[ALLOWED])
    c = raw(srv)
    for origin in (OTHER, ALLOWED + ".evil.com", ALLOWED + "/", "null"):
        r = c.request(build("GET", "/api", {"Origin": origin}))
        assert r.status == 200
        assert not r.has("access-control-allow-origin"), origin


def test_no_origin_gets_no_acao(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=[ALLOWED])
    r = raw(srv).request(build("GET", "/api"))
    assert r.status == 200
    assert not r.has("access-control-allow-origin")


def test_wildcard_origin(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=["*"])
    c = raw(srv)
    for origin in (ALLOWED, OTHER, "https://anything.test:8443"):
        r = c.request(build("GET", "/api", {"Origin": origin}))
        assert r.get_all("access-control-allow-origin") == ["*"]


def test_acao_on_deferred_and_json_responses(serve, make_router, raw, build) -> None:
    srv = serve(
        {"/j": make_router(get=lambda q, s: s.json(200, {"a": 1}))},
        cors=[ALLOWED],
    )
    r = raw(srv).request(build("GET", "/j", {"Origin": ALLOWED}))
    assert r.get("access-control-allow-origin") == ALLOWED


# --------------------------------------------------------------------------- #
# Preflight
# --------------------------------------------------------------------------- #


def test_preflight_default_strings(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=[ALLOWED])
    c = raw(srv)
    r = c.request(build("OPTIONS", "/api", _preflight()))
    assert r.status == 204
    assert r.get("access-control-allow-origin") == ALLOWED
    assert r.get("access-control-allow-methods") == "POST, GET, OPTIONS"
    assert r.get("access-control-allow-headers") == "content-type"
    assert r.body == b""
    assert not r.has("content-length")
    # connection still fine afterwards
    assert c.request(build("GET", "/api", {"Origin": ALLOWED})).body == b"get"


def test_preflight_custom_strings(serve, api, raw, build) -> None:
    srv = serve(
        {"/api": api},
        cors={
            "allowed_origins": [ALLOWED],
            "access_control_allowed_methods": "GET, PUT, DELETE",
            "access_control_allowed_headers": "content-type, x-token",
        },
    )
    r = raw(srv).request(
        build(
            "OPTIONS",
            "/api",
            _preflight("PUT", extra=[("Access-Control-Request-Headers", "x-token")]),
        )
    )
    assert r.status == 204
    assert r.get("access-control-allow-origin") == ALLOWED
    assert r.get("access-control-allow-methods") == "GET, PUT, DELETE"
    assert r.get("access-control-allow-headers") == "content-type, x-token"


def test_preflight_positional_arguments(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, start=False)
    srv.enable_cors([ALLOWED], "GET", "x-a")
    srv.start()
    r = raw(srv).request(build("OPTIONS", "/api", _preflight("GET")))
    assert r.status == 204
    assert r.get("access-control-allow-methods") == "GET"
    assert r.get("access-control-allow-headers") == "x-a"


def test_preflight_wildcard(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=["*"])
    r = raw(srv).request(build("OPTIONS", "/api", _preflight(origin=OTHER)))
    assert r.status == 204
    assert r.get("access-control-allow-origin") == "*"


def test_preflight_from_disallowed_origin_gets_no_acao(serve, api, raw, build) -> None:
    srv = serve({"/api": api}, cors=[ALLOWED])
    r = raw(srv).request(build("OPTIONS", "/api", _preflight(origin=OTHER)))
    assert not r.has("access-control-allow-origin")


def test_preflight_on_router_with_handle_options_runs_it(serve, make_router, raw, build) -> None:
    router = make_router(
        get=lambda q, s: s.send(200, "get"),
        options=lambda q, s: s.send(200, "custom options", "text/plain"),
    )
    srv = serve({"/api": router}, cors=[ALLOWED])
    r = raw(srv).request(build("OPTIONS", "/api", _preflight()))
    assert r.status == 200
    assert r.body == b"custom options"


def test_preflight_on_param_route(serve, api, raw, build) -> None:
    srv = serve({"/items/:id": api}, cors=[ALLOWED])
    r = raw(srv).request(build("OPTIONS", "/items/7", _preflight("GET")))
    assert r.status == 204
    assert r.get("access-control-allow-origin") == ALLOWED
