"""Route patterns, registration order, 404/405, method dispatch, router kinds."""

from __future__ import annotations

import types
from typing import Any

import pytest
from godottpd import HttpRouter, HttpServer

pytestmark = pytest.mark.async_too


def _named(label: str, make_router):
    """A router whose GET answers ``label`` and the path parameters."""

    def get(req: Any, res: Any) -> None:
        params = ",".join(f"{k}={v}" for k, v in sorted(req.parameters.items()))
        res.send(200, f"{label}|{params}", "text/plain")

    return make_router(get=get)


def _allow(value: str | None) -> set[str]:
    assert value is not None, "405 without an Allow header"
    return {m.strip() for m in value.split(",") if m.strip()}


# --------------------------------------------------------------------------- #
# Patterns
# --------------------------------------------------------------------------- #


def test_named_segment_is_captured(serve, make_router, fetch) -> None:
    srv = serve({"/hello/:name": _named("hello", make_router)})
    r = fetch(srv, "GET", "/hello/world")
    assert r.status == 200
    assert r.text == "hello|name=world"


def test_named_segment_is_percent_decoded(serve, make_router, fetch) -> None:
    srv = serve({"/hello/:name": _named("hello", make_router)})
    r = fetch(srv, "GET", "/hello/J%C3%BCrgen%20M%C3%BCller")
    assert r.status == 200
    assert r.text == "hello|name=Jürgen Müller"


def test_named_segment_matches_one_segment_only(serve, make_router, fetch) -> None:
    srv = serve({"/hello/:name": _named("hello", make_router)})
    assert fetch(srv, "GET", "/hello/a/b").status == 404
    assert fetch(srv, "GET", "/hello").status == 404
    assert fetch(srv, "GET", "/hello/").status == 404


def test_several_named_segments(serve, make_router, fetch) -> None:
    srv = serve({"/users/:uid/posts/:pid": _named("post", make_router)})
    r = fetch(srv, "GET", "/users/7/posts/abc-9")
    assert r.text == "post|pid=abc-9,uid=7"


def test_trailing_slash_is_optional(serve, make_router, fetch) -> None:
    srv = serve(
        {
            "/plain": _named("plain", make_router),
            "/hello/:name": _named("hello", make_router),
        }
    )
    assert fetch(srv, "GET", "/plain").text == "plain|"
    assert fetch(srv, "GET", "/plain/").text == "plain|"
    assert fetch(srv, "GET", "/hello/bob/").text == "hello|name=bob"


def test_literal_route_is_not_a_prefix(serve, make_router, fetch) -> None:
    srv = serve({"/plain": _named("plain", make_router)})
    assert fetch(srv, "GET", "/plainx").status == 404
    assert fetch(srv, "GET", "/plain/extra").status == 404
    assert fetch(srv, "GET", "/").status == 404


def test_dot_in_literal_is_a_dot(serve, make_router, fetch) -> None:
    srv = serve({"/file.txt": _named("file", make_router)})
    assert fetch(srv, "GET", "/file.txt").status == 200
    assert fetch(srv, "GET", "/fileXtxt").status == 404
    assert fetch(srv, "GET", "/file-txt").status == 404


# Only characters that are legal as-is in a request path (RFC 3986 pchar).
@pytest.mark.parametrize("literal", ["/a+b", "/a(b)", "/a$", "/a*", "/a+", "/(a)"])
def test_regex_metacharacters_in_literals_are_literal(serve, make_router, fetch, literal) -> None:
    srv = serve({literal: _named("lit", make_router)})
    assert fetch(srv, "GET", literal).status == 200
    assert fetch(srv, "GET", "/a").status == 404
    assert fetch(srv, "GET", "/ab").status == 404


def test_query_string_does_not_affect_matching(serve, make_router, fetch) -> None:
    srv = serve({"/hello/:name": _named("hello", make_router)})
    assert fetch(srv, "GET", "/hello/bob?x=1&y=/z").text == "hello|name=bob"


def test_regex_route_named_groups(serve, make_router, fetch) -> None:
    srv = serve({r"^/items/(?P<id>[0-9]+)$": _named("item", make_router)})
    assert fetch(srv, "GET", "/items/42").text == "item|id=42"
    assert fetch(srv, "GET", "/items/abc").status == 404
    assert fetch(srv, "GET", "/items/").status == 404


def test_regex_route_several_groups(serve, make_router, fetch) -> None:
    srv = serve({r"^/(?P<year>\d{4})/(?P<slug>[a-z-]+)$": _named("blog", make_router)})
    assert fetch(srv, "GET", "/2024/hello-world").text == "blog|slug=hello-world,year=2024"
    assert fetch(srv, "GET", "/24/hello").status == 404


def test_regex_route_uses_rust_regex_syntax(serve, make_router, fetch) -> None:
    # \p{L} is valid in Rust's regex crate (and a plain letter class in spirit).
    srv = serve({r"^/w/(?P<word>\p{L}+)$": _named("word", make_router)})
    assert fetch(srv, "GET", "/w/h%C3%A9llo").text == "word|word=héllo"
    assert fetch(srv, "GET", "/w/123").status == 404


def test_first_registered_match_wins(serve, make_router, fetch) -> None:
    srv = serve(
        [
            ("/a/:x", _named("param", make_router)),
            ("/a/b", _named("literal", make_router)),
        ]
    )
    assert fetch(srv, "GET", "/a/b").text == "param|x=b"


def test_first_registered_match_wins_other_order(serve, make_router, fetch) -> None:
    srv = serve(
        [
            ("/a/b", _named("literal", make_router)),
            ("/a/:x", _named("param", make_router)),
        ]
    )
    assert fetch(srv, "GET", "/a/b").text == "literal|"
    assert fetch(srv, "GET", "/a/c").text == "param|x=c"


def test_regex_and_pattern_routes_mix_in_order(serve, make_router, fetch) -> None:
    srv = serve(
        [
            (r"^/mix/(?P<n>\d+)$", _named("regex", make_router)),
            ("/mix/:any", _named("pattern", make_router)),
        ]
    )
    assert fetch(srv, "GET", "/mix/12").text == "regex|n=12"
    assert fetch(srv, "GET", "/mix/ab").text == "pattern|any=ab"


# --------------------------------------------------------------------------- #
# Registration errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "pattern", ["^/(unclosed", "^/a[", "^/(?P<x>a", "^/a{2,1}", "^/(?P<x>a)(?P<x>b)"]
)
def test_invalid_regex_raises_value_error(pattern: str) -> None:
    srv = HttpServer(port=0, bind_address="127.0.0.1")
    with pytest.raises(ValueError):
        srv.register_router(pattern, HttpRouter())


@pytest.mark.parametrize("pattern", ["hello", "", "hello/:name", " /x", "*"])
def test_path_must_start_with_slash_or_caret(pattern: str) -> None:
    srv = HttpServer(port=0, bind_address="127.0.0.1")
    with pytest.raises(ValueError):
        srv.register_router(pattern, HttpRouter())


# --------------------------------------------------------------------------- #
# 404 / 405 / dispatch
# --------------------------------------------------------------------------- #


def test_no_match_is_404_not_found(serve, make_router, raw, build) -> None:
    srv = serve({"/exists": _named("x", make_router)})
    r = raw(srv).request(build("GET", "/missing"))
    assert r.status == 404
    assert r.reason == "Not Found"
    assert r.body == b"Not found"
    assert r.get("content-length") == "9"


def test_no_routes_at_all_is_404(serve, fetch) -> None:
    srv = serve()
    for method in ("GET", "POST", "DELETE"):
        r = fetch(srv, method, "/")
        assert r.status == 404
        assert r.body == b"Not found"


def test_405_with_allow_for_get_only_router(serve, make_router, fetch) -> None:
    srv = serve({"/r": make_router(get=lambda q, s: s.send(200, "g"))})
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = fetch(srv, method, "/r", body=b"x" if method != "DELETE" else None)
        assert r.status == 405, method
        assert _allow(r.headers.get("Allow")) == {"GET", "HEAD"}


def test_405_allow_lists_every_handled_method(serve, make_router, fetch) -> None:
    srv = serve(
        {
            "/r": make_router(
                get=lambda q, s: s.send(200, "g"),
                post=lambda q, s: s.send(200, "p"),
                delete=lambda q, s: s.send(200, "d"),
            )
        }
    )
    r = fetch(srv, "PUT", "/r", body=b"x")
    assert r.status == 405
    assert _allow(r.headers.get("Allow")) == {"GET", "HEAD", "POST", "DELETE"}


def test_405_allow_for_post_only_router_has_no_head(serve, make_router, fetch) -> None:
    srv = serve({"/r": make_router(post=lambda q, s: s.send(200, "p"))})
    r = fetch(srv, "GET", "/r")
    assert r.status == 405
    assert _allow(r.headers.get("Allow")) == {"POST"}


def test_base_router_handles_nothing(serve, fetch) -> None:
    srv = serve({"/r": HttpRouter()})
    for method in ("GET", "POST", "PUT", "DELETE"):
        assert fetch(srv, method, "/r").status == 405


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_each_method_dispatches_to_its_handler(serve, make_router, fetch, method) -> None:
    handlers = {
        m: (lambda name: lambda q, s: s.send(200, f"{name}:{q.method}", "text/plain"))(m)
        for m in ("get", "post", "put", "patch", "delete", "options", "head")
    }
    srv = serve({"/m": make_router(**handlers)})
    r = fetch(srv, method, "/m", body=b"b" if method in ("POST", "PUT", "PATCH") else None)
    assert r.status == 200
    assert r.text == f"{method.lower()}:{method}"


def test_custom_handle_head_is_used(serve, make_router, raw, build) -> None:
    def head(req: Any, res: Any) -> None:
        res.set("X-From", "head")
        res.send(200, "head-body!", "text/plain")

    srv = serve({"/h": make_router(get=lambda q, s: s.send(200, "get"), head=head)})
    r = raw(srv).request(build("HEAD", "/h"))
    assert r.status == 200
    assert r.get("x-from") == "head"
    assert r.get("content-length") == "10"


def test_head_falls_back_to_get_without_body(serve, make_router, raw, build) -> None:
    calls: list[str] = []

    def get(req: Any, res: Any) -> None:
        calls.append(req.method)
        res.set("X-Get", "yes")
        res.send(200, "twelve bytes", "text/plain")

    srv = serve({"/g": make_router(get=get)})
    c = raw(srv)
    r = c.request(build("HEAD", "/g"))
    assert r.status == 200
    assert r.get("content-length") == "12"
    assert r.get("x-get") == "yes"
    assert calls == ["HEAD"]
    # No body bytes were written: the next response on the connection parses cleanly.
    r2 = c.request(build("GET", "/g"))
    assert r2.status == 200
    assert r2.body == b"twelve bytes"


# --------------------------------------------------------------------------- #
# Kinds of router objects
# --------------------------------------------------------------------------- #


def test_plain_object_with_handle_methods(serve, fetch) -> None:
    class Plain:
        def handle_get(self, request: Any, response: Any) -> None:
            response.send(200, "plain get", "text/plain")

    srv = serve({"/p": Plain()})
    assert fetch(srv, "GET", "/p").body == b"plain get"
    r = fetch(srv, "POST", "/p", body=b"x")
    assert r.status == 405
    assert _allow(r.headers.get("Allow")) == {"GET", "HEAD"}


def test_namespace_object_with_function_attributes(serve, fetch) -> None:
    ns = types.SimpleNamespace(
        handle_post=lambda request, response: response.send(201, "created", "text/plain")
    )
    srv = serve({"/ns": ns})
    r = fetch(srv, "POST", "/ns", body=b"x")
    assert r.status == 201
    assert r.body == b"created"
    assert fetch(srv, "GET", "/ns").status == 405


def test_router_subclass_with_init_arguments(serve, fetch) -> None:
    class Greeter(HttpRouter):
        def __init__(self, greeting: str, *, punct: str = "!") -> None:
            super().__init__()
            self.greeting = greeting
            self.punct = punct

        def handle_get(self, request: Any, response: Any) -> None:
            response.send(200, f"{self.greeting}, {request.parameters['n']}{self.punct}")

    srv = serve({"/g/:n": Greeter("Hi", punct="?")})
    assert fetch(srv, "GET", "/g/Ann").text == "Hi, Ann?"


def test_subclass_of_subclass_inherits_handlers(serve, fetch) -> None:
    class Base(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            response.send(200, "base get")

    class Child(Base):
        def handle_post(self, request: Any, response: Any) -> None:
            response.send(200, "child post")

    srv = serve({"/c": Child()})
    assert fetch(srv, "GET", "/c").body == b"base get"
    assert fetch(srv, "POST", "/c", body=b"x").body == b"child post"
    r = fetch(srv, "PUT", "/c", body=b"x")
    assert r.status == 405
    assert _allow(r.headers.get("Allow")) == {"GET", "HEAD", "POST"}


def test_same_router_on_several_routes(serve, make_router, fetch) -> None:
    shared = _named("shared", make_router)
    srv = serve({"/one": shared, "/two/:x": shared})
    assert fetch(srv, "GET", "/one").text == "shared|"
    assert fetch(srv, "GET", "/two/2").text == "shared|x=2"
