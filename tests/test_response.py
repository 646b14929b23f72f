"""HttpResponse: send/send_raw/json, headers, set(), status codes, reason phrases, Date, Server."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import queue
from typing import Any

import pytest
from godottpd import Client, HttpServer

pytestmark = pytest.mark.async_too


@pytest.fixture
def one(serve, make_router, raw, build):
    """one(handler, **server_kwargs) -> (RawResponse, notes) for GET / answered by handler.

    The handler gets (request, response, notes) where notes is a dict it can fill.
    """

    def _one(handler: Any, method: str = "GET", **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        notes: dict[str, Any] = {}
        done: queue.Queue[None] = queue.Queue()

        def h(req: Any, res: Any) -> None:
            try:
                handler(req, res, notes)
            finally:
                done.put(None)

        srv = serve({"/": make_router(**{method.lower(): h})}, **kwargs)
        resp = raw(srv).request(build(method, "/", body=b"x" if method == "POST" else b""))
        done.get(timeout=5)
        return resp, notes

    return _one


def _catch(fn: Any) -> str:
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__
    return "no error"


# --------------------------------------------------------------------------- #
# send / send_raw / json
# --------------------------------------------------------------------------- #


def test_send_default_content_type(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200, "<p>hi</p>"))
    assert r.status == 200
    assert r.body == b"<p>hi</p>"
    assert r.get("content-type") == "text/html; charset=utf-8"
    assert r.get("content-length") == "9"


def test_send_defaults_everything(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200))
    assert r.status == 200
    assert r.body == b""
    assert r.get("content-length") == "0"


def test_send_text_type_gets_charset(one) -> None:
    r, _ = one(lambda q, s, n: s.send(201, "plain", "text/plain"))
    assert r.status == 201
    assert r.get("content-type") == "text/plain; charset=utf-8"


def test_send_keeps_explicit_charset(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200, "a,b", "text/csv; charset=utf-8"))
    assert r.get("content-type") == "text/csv; charset=utf-8"
    assert r.get("content-type").lower().count("charset") == 1


def test_send_non_text_type_unchanged(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200, "<a/>", "application/xml"))
    assert r.get("content-type") == "application/xml"


def test_send_utf8_body_and_byte_length(one) -> None:
    text = "héllo ✓ 日本語 🎉"
    r, _ = one(lambda q, s, n: s.send(200, text, "text/plain"))
    assert r.body == text.encode("utf-8")
    assert int(r.get("content-length")) == len(text.encode("utf-8"))


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\xff raw", bytearray(b"\x00\x01\xff raw"), memoryview(b"\x00\x01\xff raw")],
    ids=["bytes", "bytearray", "memoryview"],
)
def test_send_raw_bytes_like(one, data) -> None:
    r, _ = one(lambda q, s, n: s.send_raw(200, data))
    assert r.body == b"\x00\x01\xff raw"
    assert r.get("content-type") == "application/octet-stream"
    assert r.get("content-length") == str(len(b"\x00\x01\xff raw"))


def test_send_raw_defaults(one) -> None:
    r, _ = one(lambda q, s, n: s.send_raw(202))
    assert r.status == 202
    assert r.body == b""
    assert r.get("content-length") == "0"


def test_send_raw_custom_type(one) -> None:
    r, _ = one(lambda q, s, n: s.send_raw(200, b"\x89PNG", "image/png"))
    assert r.get("content-type") == "image/png"
    assert r.body == b"\x89PNG"


def test_send_raw_str_is_type_error(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.send_raw(200, "text"))
        n["sent_after_error"] = s.is_sent
        s.send(200, "fallback")

    r, n = one(h)
    assert n["err"] == "TypeError"
    assert n["sent_after_error"] is False
    assert r.body == b"fallback"


def test_json_dict(one) -> None:
    data = {"b": 1, "a": [1, 2, {"c": None}], "t": True, "f": 1.5}
    r, _ = one(lambda q, s, n: s.json(200, data))
    assert r.get("content-type").split(";")[0].strip() == "application/json"
    assert json.loads(r.body) == data
    assert b": " not in r.body and b", " not in r.body, "JSON is not compact"
    assert int(r.get("content-length")) == len(r.body)


def test_json_list_and_status(one) -> None:
    r, _ = one(lambda q, s, n: s.json(201, [1, "two", {}]))
    assert r.status == 201
    assert json.loads(r.body) == [1, "two", {}]


def test_json_non_ascii_is_raw_utf8(one) -> None:
    r, _ = one(lambda q, s, n: s.json(200, {"name": "Jürgen ✓ 日本"}))
    assert "Jürgen ✓ 日本".encode() in r.body
    assert b"\\u" not in r.body
    assert json.loads(r.body.decode("utf-8")) == {"name": "Jürgen ✓ 日本"}


@pytest.mark.parametrize("bad", ["a string", 42, None, (1, 2), {1, 2}, b"{}"])
def test_json_non_container_is_type_error(one, bad) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.json(200, bad))
        n["sent"] = s.is_sent
        s.send(200, "fallback")

    r, n = one(h)
    assert n["err"] == "TypeError"
    assert n["sent"] is False
    assert r.body == b"fallback"


# --------------------------------------------------------------------------- #
# is_sent / second send
# --------------------------------------------------------------------------- #


def test_is_sent_and_second_send_is_runtime_error(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["before"] = s.is_sent
        s.send(200, "first")
        n["after"] = s.is_sent
        n["send"] = _catch(lambda: s.send(200, "second"))
        n["send_raw"] = _catch(lambda: s.send_raw(200, b"third"))
        n["json"] = _catch(lambda: s.json(200, {"x": 1}))

    r, n = one(h)
    assert n["before"] is False
    assert n["after"] is True
    assert n["send"] == n["send_raw"] == n["json"] == "RuntimeError"
    assert r.body == b"first"


def test_nothing_after_first_response_on_the_wire(serve, make_router, raw, build) -> None:
    def h(q: Any, s: Any) -> None:
        s.send(200, "first", "text/plain")
        try:
            s.send(200, "second", "text/plain")
        except RuntimeError:
            pass

    srv = serve({"/": make_router(get=h)})
    c = raw(srv)
    assert c.request(build("GET", "/")).body == b"first"
    assert c.request(build("GET", "/")).body == b"first"


# --------------------------------------------------------------------------- #
# status codes and reason phrases
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "code, reason",
    [
        (200, "OK"),
        (201, "Created"),
        (202, "Accepted"),
        (301, "Moved Permanently"),
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (418, "I'm a teapot"),
        (429, "Too Many Requests"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
    ],
)
def test_standard_reason_phrases(one, code, reason) -> None:
    r, _ = one(lambda q, s, n: s.send(code, "x"))
    assert r.version == "HTTP/1.1"
    assert r.status == code
    assert r.reason == reason


@pytest.mark.parametrize("code", [299, 399, 499, 599, 219, 520])
def test_unknown_codes_get_a_generic_reason(one, code) -> None:
    r, _ = one(lambda q, s, n: s.send(code, "x"))
    assert r.status == code
    assert r.reason.strip() != ""


@pytest.mark.parametrize("code", [-1, 0, 99, 600, 1000, 100, 101, 103, 199])
def test_invalid_status_is_value_error(one, code) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["send"] = _catch(lambda: s.send(code, "x"))
        n["send_raw"] = _catch(lambda: s.send_raw(code, b"x"))
        n["json"] = _catch(lambda: s.json(code, {}))
        n["sent"] = s.is_sent
        s.send(200, "recovered")

    r, n = one(h)
    assert (n["send"], n["send_raw"], n["json"]) == ("ValueError",) * 3
    assert n["sent"] is False
    assert r.status == 200
    assert r.body == b"recovered"


@pytest.mark.parametrize("code", [204, 304])
def test_no_content_statuses_have_no_length_and_no_body(serve, make_router, raw, build, code):
    srv = serve(
        {
            "/nb": make_router(get=lambda q, s: s.send(code, "should not be sent")),
            "/next": make_router(get=lambda q, s: s.send(200, "next", "text/plain")),
        }
    )
    c = raw(srv)
    r = c.request(build("GET", "/nb"))
    assert r.status == code
    assert not r.has("content-length")
    assert not r.has("transfer-encoding")
    # If a body had been written, the next response would not parse.
    r2 = c.request(build("GET", "/next"))
    assert r2.status == 200
    assert r2.body == b"next"


# --------------------------------------------------------------------------- #
# Date / Content-Length / Server
# --------------------------------------------------------------------------- #


def test_date_header(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200, "x"))
    date = r.get("date")
    assert date is not None
    assert date.endswith(" GMT")
    parsed = email.utils.parsedate_to_datetime(date)
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - parsed).total_seconds()) < 60


def test_exactly_one_of_each_framing_header(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200, "abc"))
    assert r.get_all("content-length") == ["3"]
    assert len(r.get_all("date")) == 1
    assert len(r.get_all("content-type")) == 1


def test_default_server_header(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["ident"] = s.server_identifier
        s.send(200, "x")

    r, n = one(h)
    assert n["ident"] == "GodotTPD"
    assert r.get_all("server") == ["GodotTPD"]


def test_server_identifier_from_server(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["ident"] = s.server_identifier
        s.send(200, "x")

    r, n = one(h, server_identifier="Custom/1.2")
    assert n["ident"] == "Custom/1.2"
    assert r.get_all("server") == ["Custom/1.2"]


def test_server_identifier_set_on_response(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.server_identifier = "PerResponse"
        s.send(200, "x")

    r, _ = one(h)
    assert r.get_all("server") == ["PerResponse"]


def test_empty_server_identifier_sends_no_server_header(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.server_identifier = ""
        s.send(200, "x")

    r, _ = one(h)
    assert not r.has("server")


def test_empty_server_identifier_on_server(one) -> None:
    r, _ = one(lambda q, s, n: s.send(200, "x"), server_identifier="")
    assert not r.has("server")


def test_server_identifier_on_404(serve, raw, build) -> None:
    srv = serve(server_identifier="Srv404")
    r = raw(srv).request(build("GET", "/none"))
    assert r.status == 404
    assert r.get("server") == "Srv404"
    assert r.has("date")


def test_bad_server_identifier_never_reaches_the_wire(make_router, raw, build) -> None:
    try:
        srv = HttpServer(
            port=0, bind_address="127.0.0.1", server_identifier="Evil\r\nX-Injected: 1"
        )
    except ValueError:
        return  # rejected up front: fine
    srv.register_router("/", make_router(get=lambda q, s: s.send(200, "x")))
    with srv:
        for path in ("/", "/missing"):
            c = raw(srv)
            c.send(build("GET", path))
            try:
                r = c.read_response()
            except ConnectionError:
                continue
            assert b"X-Injected" not in r.head


def test_bad_response_server_identifier_is_value_error(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["assign"] = _catch(lambda: setattr(s, "server_identifier", "Evil\r\nX-Injected: 1"))
        if n["assign"] == "no error":
            n["send"] = _catch(lambda: s.send(200, "x"))
        s.server_identifier = "Fine"
        if not s.is_sent:
            s.send(200, "x")

    r, n = one(h)
    assert "ValueError" in (n["assign"], n.get("send"))
    assert b"X-Injected" not in r.head
    assert r.get("server") == "Fine"


# --------------------------------------------------------------------------- #
# set() and the live headers dict
# --------------------------------------------------------------------------- #


def test_set_adds_header_and_headers_dict_shows_it(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.set("X-Thing", "one")
        n["headers"] = dict(s.headers)
        s.send(200, "x")

    r, n = one(h)
    assert r.get_all("x-thing") == ["one"]
    assert {k.lower(): v for k, v in n["headers"].items()} == {"x-thing": "one"}


def test_set_replaces_case_insensitively(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.set("X-Thing", "one")
        s.set("x-THING", "two")
        n["count"] = sum(1 for k in s.headers if k.lower() == "x-thing")
        s.send(200, "x")

    r, n = one(h)
    assert r.get_all("x-thing") == ["two"]
    assert n["count"] == 1


def test_set_content_type_replaces_servers(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.set("Content-Type", "application/x-custom")
        s.send(200, "x")  # default text/html must not win

    r, _ = one(h)
    assert r.get_all("content-type") == ["application/x-custom"]


def test_set_content_type_lowercase_replaces_for_json(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.set("content-type", "application/vnd.api+json")
        s.json(200, {"a": 1})

    r, _ = one(h)
    assert r.get_all("content-type") == ["application/vnd.api+json"]


@pytest.mark.parametrize(
    "name", ["Content-Length", "content-length", "Transfer-Encoding", "TRANSFER-ENCODING"]
)
def test_set_framing_headers_is_value_error(one, name) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.set(name, "5"))
        s.send(200, "body")

    r, n = one(h)
    assert n["err"] == "ValueError"
    assert r.get_all("content-length") == ["4"]
    assert not r.has("transfer-encoding")


@pytest.mark.parametrize(
    "name, value",
    [
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("Bad\r\nName", "v"),
        ("Bad(", "v"),
        ("Naïve", "v"),
        ("X-Ok", "a\r\nX-Injected: 1"),
        ("X-Ok", "a\nb"),
        ("X-Ok", "a\rb"),
        ("X-Ok", "a\x00b"),
    ],
)
def test_set_invalid_is_value_error(one, name, value) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        n["err"] = _catch(lambda: s.set(name, value))
        n["headers"] = dict(s.headers)
        s.send(200, "body")

    r, n = one(h)
    assert n["err"] == "ValueError"
    assert n["headers"] == {}
    assert not r.has("x-injected")
    assert b"X-Injected" not in r.head


def test_headers_assigned_directly_are_sent(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.headers["X-Direct"] = "yes"
        s.send(200, "x")

    r, _ = one(h)
    assert r.get_all("x-direct") == ["yes"]


def test_invalid_direct_header_fails_send_then_can_be_fixed(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.headers["X-Bad"] = "evil\r\nX-Injected: 1"
        n["err"] = _catch(lambda: s.send(200, "first try"))
        n["sent"] = s.is_sent
        del s.headers["X-Bad"]
        s.send(200, "second try")

    r, n = one(h)
    assert n["err"] == "ValueError"
    assert n["sent"] is False
    assert r.status == 200
    assert r.body == b"second try"
    assert b"X-Injected" not in r.head and not r.has("x-bad")


def test_invalid_direct_header_name_fails_send(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.headers["Bad Name"] = "v"
        n["err"] = _catch(lambda: s.json(200, {"a": 1}))
        n["sent"] = s.is_sent
        s.headers.clear()
        s.send_raw(200, b"ok")

    r, n = one(h)
    assert n["err"] == "ValueError"
    assert n["sent"] is False
    assert r.body == b"ok"


def test_direct_content_length_never_duplicates_framing(one) -> None:
    def h(q: Any, s: Any, n: dict[str, Any]) -> None:
        s.headers["Content-Length"] = "999"
        n["err"] = _catch(lambda: s.send(200, "abc"))
        if not s.is_sent:
            s.headers.clear()
            s.send(200, "abc")

    r, n = one(h)
    assert n["err"] in ("ValueError", "no error")
    assert r.get_all("content-length") == ["3"]
    assert r.body == b"abc"


def test_invalid_direct_header_and_giving_up_yields_500(serve, make_router, raw, build) -> None:
    errors: list[str] = []

    def h(q: Any, s: Any) -> None:
        s.headers["X-Bad"] = "evil\r\nX-Injected: 1"
        errors.append(_catch(lambda: s.send(200, "never")))
        # handler returns without sending and without keeping the response

    srv = serve({"/": make_router(get=h)})
    r = raw(srv).request(build("GET", "/"))
    assert errors == ["ValueError"]
    assert r.status == 500
    assert b"X-Injected" not in r.head
    assert b"never" not in r.body


# --------------------------------------------------------------------------- #
# client
# --------------------------------------------------------------------------- #


def test_response_client(serve, make_router, raw, build) -> None:
    seen: dict[str, Any] = {}

    def h(q: Any, s: Any) -> None:
        seen["is_client"] = isinstance(s.client, Client)
        seen["host"] = s.client.host
        seen["port"] = s.client.port
        seen["open"] = s.client.is_open
        seen["same_as_request"] = (q.client.host, q.client.port) == (s.client.host, s.client.port)
        s.send(200, "x")

    srv = serve({"/": make_router(get=h)})
    c = raw(srv)
    assert c.request(build("GET", "/")).status == 200
    assert seen == {
        "is_client": True,
        "host": "127.0.0.1",
        "port": c.local_port,
        "open": True,
        "same_as_request": True,
    }
