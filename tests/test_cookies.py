"""HttpResponse.cookie(): Set-Cookie lines, options, validation; the live cookies list."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

pytestmark = pytest.mark.async_too


@pytest.fixture
def cookie_resp(serve, make_router, raw, build):
    """cookie_resp(handler) -> (RawResponse, notes); handler(res, notes) then 200 is sent."""

    def _run(handler: Any) -> tuple[Any, dict[str, Any]]:
        notes: dict[str, Any] = {}

        def get(req: Any, res: Any) -> None:
            try:
                handler(res, notes)
            except Exception as exc:
                notes["unexpected"] = repr(exc)
            if not res.is_sent:
                res.send(200, "ok", "text/plain")

        srv = serve({"/": make_router(get=get)})
        r = raw(srv).request(build("GET", "/"))
        assert "unexpected" not in notes, notes["unexpected"]
        return r, notes

    return _run


def _catch(fn: Any) -> str:
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__
    return "no error"


def _parse(line: str) -> tuple[str, set[str]]:
    parts = [p.strip() for p in line.split(";")]
    return parts[0], {p for p in parts[1:] if p}


# --------------------------------------------------------------------------- #
# Set-Cookie output
# --------------------------------------------------------------------------- #


def test_simple_cookie(cookie_resp) -> None:
    r, _ = cookie_resp(lambda s, n: s.cookie("id", "abc"))
    assert r.get_all("set-cookie") == ["id=abc"]


def test_options_default_is_empty(cookie_resp) -> None:
    r, _ = cookie_resp(lambda s, n: s.cookie("k", "v", {}))
    assert r.get_all("set-cookie") == ["k=v"]


def test_godot_spelling_options(cookie_resp) -> None:
    opts = {"path": "/", "max-age": 60, "secure": True, "httpOnly": True, "sameSite": "Lax"}
    r, _ = cookie_resp(lambda s, n: s.cookie("id", "abc", opts))
    (line,) = r.get_all("set-cookie")
    first, attrs = _parse(line)
    assert first == "id=abc"
    assert attrs == {"Path=/", "Max-Age=60", "Secure", "HttpOnly", "SameSite=Lax"}


def test_documented_example_order(cookie_resp) -> None:
    opts = {"path": "/", "max-age": 60, "secure": True, "httpOnly": True, "sameSite": "Lax"}
    r, _ = cookie_resp(lambda s, n: s.cookie("id", "abc", opts))
    assert r.get_all("set-cookie") == ["id=abc; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Lax"]


def test_python_spelling_options(cookie_resp) -> None:
    opts = {"path": "/app", "max_age": 3600, "http_only": True, "same_site": "Strict"}
    r, _ = cookie_resp(lambda s, n: s.cookie("sess", "xyz", opts))
    (line,) = r.get_all("set-cookie")
    first, attrs = _parse(line)
    assert first == "sess=xyz"
    assert attrs == {"Path=/app", "Max-Age=3600", "HttpOnly", "SameSite=Strict"}


def test_domain_and_samesite_none(cookie_resp) -> None:
    opts = {"domain": "example.com", "secure": True, "sameSite": "None"}
    r, _ = cookie_resp(lambda s, n: s.cookie("a", "b", opts))
    _, attrs = _parse(r.get_all("set-cookie")[0])
    assert attrs == {"Domain=example.com", "Secure", "SameSite=None"}


def test_string_true_flags(cookie_resp) -> None:
    r, _ = cookie_resp(lambda s, n: s.cookie("a", "b", {"secure": "true", "httpOnly": "true"}))
    _, attrs = _parse(r.get_all("set-cookie")[0])
    assert attrs == {"Secure", "HttpOnly"}


def test_false_flags_are_left_out(cookie_resp) -> None:
    r, _ = cookie_resp(lambda s, n: s.cookie("a", "b", {"secure": False, "http_only": False}))
    assert r.get_all("set-cookie") == ["a=b"]


def test_flags_have_no_value(cookie_resp) -> None:
    r, _ = cookie_resp(lambda s, n: s.cookie("a", "b", {"secure": True, "httpOnly": True}))
    line = r.get_all("set-cookie")[0]
    assert "Secure=" not in line and "HttpOnly=" not in line


EXPIRES = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize(
    "expires",
    [
        dt.datetime(2015, 10, 21, 7, 28, 0, tzinfo=dt.timezone.utc),
        dt.datetime(2015, 10, 21, 9, 28, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        1445412480,
        1445412480.0,
        EXPIRES,
    ],
    ids=["datetime-utc", "datetime-plus2", "unix-int", "unix-float", "http-date"],
)
def test_expires(cookie_resp, expires) -> None:
    r, _ = cookie_resp(lambda s, n: s.cookie("e", "1", {"expires": expires}))
    _, attrs = _parse(r.get_all("set-cookie")[0])
    assert attrs == {f"Expires={EXPIRES}"}


def test_each_cookie_its_own_line(cookie_resp) -> None:
    def h(s: Any, n: dict[str, Any]) -> None:
        s.cookie("a", "1")
        s.cookie("b", "2", {"path": "/"})
        s.cookie("c", "3")

    r, _ = cookie_resp(h)
    lines = r.get_all("set-cookie")
    assert [_parse(x)[0] for x in lines] == ["a=1", "b=2", "c=3"]
    assert r.head.lower().count(b"\r\nset-cookie:") == 3


def test_empty_value_and_wide_cookie_octets(cookie_resp) -> None:
    octets = "!#$%&'()*+-./0123456789:<=>?@ABCXYZ[]^_`abcxyz{|}~"

    def h(s: Any, n: dict[str, Any]) -> None:
        s.cookie("empty", "")
        s.cookie("wide", octets)

    r, _ = cookie_resp(h)
    assert [_parse(x)[0] for x in r.get_all("set-cookie")] == ["empty=", f"wide={octets}"]


def test_cookies_list_is_live(cookie_resp) -> None:
    def h(s: Any, n: dict[str, Any]) -> None:
        n["before"] = list(s.cookies)
        s.cookie("a", "1", {"path": "/"})
        n["after"] = list(s.cookies)
        s.cookies.append("direct=2")

    r, n = cookie_resp(h)
    assert n["before"] == []
    assert len(n["after"]) == 1
    assert n["after"][0].startswith("a=1")
    assert [_parse(x)[0] for x in r.get_all("set-cookie")] == ["a=1", "direct=2"]


def test_cookies_with_json_and_send_raw(serve, make_router, raw, build) -> None:
    def j(q: Any, s: Any) -> None:
        s.cookie("j", "1")
        s.json(200, {"ok": True})

    def b(q: Any, s: Any) -> None:
        s.cookie("b", "2")
        s.send_raw(200, b"ok")

    srv = serve({"/j": make_router(get=j), "/b": make_router(get=b)})
    c = raw(srv)
    assert c.request(build("GET", "/j")).get_all("set-cookie") == ["j=1"]
    assert c.request(build("GET", "/b")).get_all("set-cookie") == ["b=2"]


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "name", ["", "a b", "a;b", "a=b", "a,b", "a\tb", "a\r\nb", "a\x00", "ä", "(x)", "a/b", "a@b"]
)
def test_invalid_cookie_name(cookie_resp, name) -> None:
    def h(s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.cookie(name, "v"))
        n["cookies"] = list(s.cookies)

    r, n = cookie_resp(h)
    assert n["err"] == "ValueError"
    assert n["cookies"] == []
    assert not r.has("set-cookie")


@pytest.mark.parametrize(
    "value",
    [
        "a;b",
        "a,b",
        "a b",
        'a"b',
        "a\\b",
        "a\r\nSet-Cookie: evil=1",
        "a\nb",
        "a\x00b",
        "a\x7fb",
        "ü",
        "a\tb",
    ],
)
def test_invalid_cookie_value(cookie_resp, value) -> None:
    def h(s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.cookie("ok", value))
        n["cookies"] = list(s.cookies)

    r, n = cookie_resp(h)
    assert n["err"] == "ValueError"
    assert n["cookies"] == []
    assert not r.has("set-cookie")


def test_unknown_option(cookie_resp) -> None:
    def h(s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.cookie("a", "b", {"colour": "blue"}))
        n["cookies"] = list(s.cookies)

    r, n = cookie_resp(h)
    assert n["err"] == "ValueError"
    assert n["cookies"] == []
    assert not r.has("set-cookie")


@pytest.mark.parametrize(
    "opts",
    [
        {"path": "/a\r\nSet-Cookie: evil=1"},
        {"domain": "x.com\nevil"},
        {"path": "/a; Domain=evil.com"},
        {"domain": "x.com; Secure"},
    ],
)
def test_option_values_that_break_the_line(cookie_resp, opts) -> None:
    def h(s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.cookie("a", "b", opts))

    r, n = cookie_resp(h)
    assert n["err"] == "ValueError"
    assert not r.has("set-cookie")
    assert b"evil" not in r.head


def test_request_cookie_round_trip(serve, make_router, fetch) -> None:
    def set_it(q: Any, s: Any) -> None:
        s.cookie("token", "t0k3n", {"path": "/"})
        s.send(200, "set")

    def read_it(q: Any, s: Any) -> None:
        s.send(200, q.get_cookies().get("token", "missing"), "text/plain")

    srv = serve({"/set": make_router(get=set_it), "/read": make_router(get=read_it)})
    r = fetch(srv, "GET", "/set")
    cookie_pair = r.headers["Set-Cookie"].split(";")[0]
    assert fetch(srv, "GET", "/read", headers={"Cookie": cookie_pair}).body == b"t0k3n"
