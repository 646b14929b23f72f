"""HttpRequest: method, path, headers, body, query, parameters, parsed bodies, cookies, client."""

from __future__ import annotations

import collections.abc
import json
import operator
from typing import Any

import godottpd
import pytest
from godottpd import Client, Headers


def _probe_route(serve, probe, fn, route: str = r"^/.*$"):
    p = probe(fn)
    srv = serve({route: p})
    return srv, p


# --------------------------------------------------------------------------- #
# method / path / version
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_method(serve, probe, fetch, method) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.method)
    assert fetch(srv, method, "/x", body=b"1" if method != "GET" else None).status == 200
    assert p.result() == method


def test_path_is_decoded_and_without_query(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.path)
    fetch(srv, "GET", "/a%20b/caf%C3%A9/%E2%9C%93?x=1&y=2")
    assert p.result() == "/a b/café/✓"


def test_plain_path(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.path)
    fetch(srv, "GET", "/just/a/path")
    assert p.result() == "/just/a/path"


def test_http_version_11_and_10(serve, probe, raw, build) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.http_version)
    raw(srv).request(build("GET", "/", version="HTTP/1.1"))
    assert p.result() == "HTTP/1.1"
    raw(srv).request(build("GET", "/", version="HTTP/1.0"))
    assert p.result() == "HTTP/1.0"


# --------------------------------------------------------------------------- #
# headers
# --------------------------------------------------------------------------- #


def _headers_snapshot(r: Any) -> dict[str, Any]:
    h = r.headers
    return {
        "type_ok": isinstance(h, Headers) and isinstance(h, collections.abc.Mapping),
        "ct_lower": h["content-type"],
        "ct_mixed": h["Content-Type"],
        "ct_upper": h["CONTENT-TYPE"],
        "get": h.get("x-custom"),
        "get_missing": h.get("x-missing"),
        "get_default": h.get("x-missing", "dflt"),
        "in": ("X-CUSTOM" in h, "x-custom" in h, "x-missing" in h),
        "keys": list(h),
        "len": len(h),
        "multi": h["x-multi"],
        "multi_all": h.get_all("X-Multi"),
        "single_all": h.get_all("x-custom"),
        "missing_all": h.get_all("x-nope"),
        "items": dict(h.items()),
        "keyerror": _raises(lambda: h["x-missing"], KeyError),
        "readonly": _raises(lambda: operator.setitem(h, "x-new", "v"), TypeError),
    }


def _raises(fn: Any, exc: type[BaseException]) -> bool:
    try:
        fn()
    except exc:
        return True
    return False


def test_headers_mapping(serve, probe, raw, build) -> None:
    srv, p = _probe_route(serve, probe, _headers_snapshot)
    data = build(
        "POST",
        "/",
        [
            ("Host", "example.test"),
            ("Content-Type", "text/plain"),
            ("X-Custom", "Value With  Spaces"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("X-MULTI", "c, d"),
        ],
        body=b"hi",
    )
    assert raw(srv).request(data).status == 200
    s = p.result()
    assert s["type_ok"]
    assert s["ct_lower"] == s["ct_mixed"] == s["ct_upper"] == "text/plain"
    assert s["get"] == "Value With  Spaces"
    assert s["get_missing"] is None
    assert s["get_default"] == "dflt"
    assert s["in"] == (True, True, False)
    assert sorted(s["keys"]) == sorted(
        ["host", "content-type", "x-custom", "x-multi", "content-length"]
    )
    assert all(k == k.lower() for k in s["keys"])
    assert len(set(s["keys"])) == len(s["keys"])
    assert s["len"] == 5
    assert s["multi"] == "a, b, c, d"
    assert s["multi_all"] == ["a", "b", "c, d"]
    assert s["single_all"] == ["Value With  Spaces"]
    assert s["missing_all"] == []
    assert s["items"]["x-multi"] == "a, b, c, d"
    assert s["items"]["host"] == "example.test"
    assert s["keyerror"]
    assert s["readonly"]


def test_header_value_whitespace_is_trimmed(serve, probe, raw) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.headers["x-pad"])
    raw(srv).request(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \t padded value \t\r\n\r\n")
    assert p.result() == "padded value"


# --------------------------------------------------------------------------- #
# body
# --------------------------------------------------------------------------- #


def test_body_is_exact_bytes(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.body)
    payload = bytes(range(256)) * 4 + b"\r\n\r\n\x00end"
    fetch(srv, "POST", "/", body=payload, headers={"Content-Type": "application/octet-stream"})
    body = p.result()
    assert type(body) is bytes
    assert body == payload


def test_empty_body_is_empty_bytes(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.body)
    fetch(srv, "GET", "/")
    assert p.result() == b""


def test_large_body(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: (len(r.body), r.body[:3], r.body[-3:]))
    payload = b"abc" + bytes(1024 * 1024) + b"xyz"
    fetch(srv, "POST", "/", body=payload)
    assert p.result() == (len(payload), b"abc", b"xyz")


# --------------------------------------------------------------------------- #
# query
# --------------------------------------------------------------------------- #


def test_query_decoded(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: (type(r.query), dict(r.query)))
    fetch(srv, "GET", "/q?a=1&b=two%20words&c=x+y&d=%E2%9C%93&e=a%3Db%26c")
    typ, q = p.result()
    assert issubclass(typ, dict)
    assert q == {"a": "1", "b": "two words", "c": "x y", "d": "✓", "e": "a=b&c"}


def test_query_last_value_wins_and_query_all(serve, probe, fetch) -> None:
    srv, p = _probe_route(
        serve,
        probe,
        lambda r: (r.query["k"], r.query_all("k"), r.query_all("solo"), r.query_all("nope")),
    )
    fetch(srv, "GET", "/q?k=1&solo=s&k=2&k=3")
    assert p.result() == ("3", ["1", "2", "3"], ["s"], [])


def test_no_query_is_empty_dict(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: (r.query, r.query_all("x")))
    fetch(srv, "GET", "/noquery")
    assert p.result() == ({}, [])


# --------------------------------------------------------------------------- #
# parameters
# --------------------------------------------------------------------------- #


def test_parameters(serve, probe, fetch) -> None:
    p = probe(lambda r: r.parameters)
    srv = serve({"/u/:user/f/:file": p})
    fetch(srv, "GET", "/u/ann%20b/f/report.pdf")
    params = p.result()
    assert isinstance(params, dict)
    assert params == {"user": "ann b", "file": "report.pdf"}


def test_parameters_empty_for_literal_route(serve, probe, fetch) -> None:
    p = probe(lambda r: r.parameters)
    srv = serve({"/lit": p})
    fetch(srv, "GET", "/lit")
    assert p.result() == {}


# --------------------------------------------------------------------------- #
# get_body_parsed
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
def test_parsed_json(serve, probe, fetch, content_type) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.get_body_parsed())
    doc = {"name": "Jürgen", "n": [1, 2.5, None, True], "nested": {"k": "✓"}}
    fetch(srv, "POST", "/", body=json.dumps(doc).encode(), headers={"Content-Type": content_type})
    assert p.result() == doc


def test_parsed_json_list(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.get_body_parsed())
    fetch(srv, "POST", "/", body=b'[1, "two", {}]', headers={"Content-Type": "application/json"})
    assert p.result() == [1, "two", {}]


def test_bad_json_raises_value_error(serve, probe, fetch) -> None:
    def parse(r: Any) -> Any:
        try:
            r.get_body_parsed()
        except ValueError as exc:
            return ("ValueError", str(exc))
        return ("no error", None)

    srv, p = _probe_route(serve, probe, parse)
    fetch(srv, "POST", "/", body=b'{"broken": ', headers={"Content-Type": "application/json"})
    kind, msg = p.result()
    assert kind == "ValueError"
    assert msg.strip(), "the error message is empty"


def test_parsed_form_urlencoded(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.get_body_parsed())
    fetch(
        srv,
        "POST",
        "/",
        body=b"a=1&b=x+y&c=caf%C3%A9&d=%26%3D",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert p.result() == {"a": "1", "b": "x y", "c": "café", "d": "&="}


def test_parsed_multipart(serve, probe, fetch) -> None:
    def parts(r: Any) -> Any:
        out = []
        for part in r.get_body_parsed():
            out.append(
                {
                    "cls": isinstance(part, godottpd.FormPart),
                    "name": part.name,
                    "filename": part.filename,
                    "content_type": part.content_type,
                    "headers": {k.lower(): v for k, v in dict(part.headers).items()},
                    "data": part.data,
                    "text": part.text if part.filename is None else None,
                }
            )
        return out

    srv, p = _probe_route(serve, probe, parts)
    boundary = "----godottpdBoundary7MA4YWxk"
    file_bytes = bytes(range(256)) + b"\r\n--not-a-boundary\r\n"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="field"\r\n'
            "\r\n"
            "héllo wörld\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="upload"; filename="data.bin"\r\n'
            "Content-Type: application/octet-stream\r\n"
            "\r\n"
        ).encode()
        + file_bytes
        + f"\r\n--{boundary}--\r\n".encode()
    )
    fetch(
        srv,
        "POST",
        "/",
        body=body,
        headers={"Content-Type": f'multipart/form-data; boundary="{boundary}"'},
    )
    got = p.result()
    assert len(got) == 2
    field, upload = got
    assert field["cls"] and upload["cls"]
    assert field["name"] == "field"
    assert field["filename"] is None
    assert field["content_type"] is None
    assert field["data"] == "héllo wörld".encode()
    assert field["text"] == "héllo wörld"
    assert "content-disposition" in field["headers"]
    assert upload["name"] == "upload"
    assert upload["filename"] == "data.bin"
    assert upload["content_type"] == "application/octet-stream"
    assert upload["data"] == file_bytes
    assert upload["headers"]["content-type"] == "application/octet-stream"


def test_multipart_unquoted_boundary(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: [(x.name, x.data) for x in r.get_body_parsed()])
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="b"\r\n\r\n\r\n'
        b"--XyZ--\r\n"
    )
    fetch(
        srv, "POST", "/", body=body, headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
    )
    assert p.result() == [("a", b"1"), ("b", b"")]


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/plain", b"hello"),
        ("application/octet-stream", b"\x00\x01"),
        ("application/json", b""),
        (None, b"a=1"),
    ],
)
def test_parsed_other_or_empty_is_none(serve, probe, fetch, content_type, body) -> None:
    srv, p = _probe_route(serve, probe, lambda r: ("result", r.get_body_parsed()))
    headers = {"Content-Type": content_type} if content_type else {}
    fetch(srv, "POST", "/", body=body, headers=headers)
    assert p.result() == ("result", None)


# --------------------------------------------------------------------------- #
# cookies
# --------------------------------------------------------------------------- #


def test_get_cookies(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.get_cookies())
    fetch(srv, "GET", "/", headers={"Cookie": "a=1; session=abc123; empty=; eq=x=y"})
    assert p.result() == {"a": "1", "session": "abc123", "empty": "", "eq": "x=y"}


def test_get_cookies_without_spaces(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.get_cookies())
    fetch(srv, "GET", "/", headers={"Cookie": "a=1;b=2"})
    assert p.result() == {"a": "1", "b": "2"}


def test_get_cookies_none(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.get_cookies())
    fetch(srv, "GET", "/")
    assert p.result() == {}


# --------------------------------------------------------------------------- #
# client
# --------------------------------------------------------------------------- #


def test_client_host_and_port(serve, probe, raw, build) -> None:
    srv, p = _probe_route(
        serve, probe, lambda r: (isinstance(r.client, Client), r.client.host, r.client.port)
    )
    c = raw(srv)
    c.request(build("GET", "/"))
    is_client, host, port = p.result()
    assert is_client
    assert host == "127.0.0.1"
    assert type(port) is int
    assert port == c.local_port


def test_client_is_open_inside_handler(serve, probe, fetch) -> None:
    srv, p = _probe_route(serve, probe, lambda r: r.client.is_open)
    fetch(srv, "GET", "/")
    assert p.result() is True
