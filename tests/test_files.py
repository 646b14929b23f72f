"""HttpFileRouter over real sockets: files, folders, options, path safety, validators,
ranges, precompressed siblings, cross-origin isolation, big and changing files.

Requests that must not be normalised by a client library are sent as raw bytes.
"""

from __future__ import annotations

import gzip
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST, RawClient, build_request, wait_for
from godottpd import HttpFileRouter, HttpServer

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"
TEN = b"0123456789"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A served folder ``root`` with a secret file and folder beside it."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.txt").write_bytes(SECRET)
    (tmp_path / "outside_dir").mkdir()
    (tmp_path / "outside_dir" / "x.txt").write_bytes(SECRET)
    (tmp_path / "rootsibling").mkdir()
    (tmp_path / "rootsibling" / "x.txt").write_bytes(SECRET)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "about.html").write_text("about page")
    (root / "ten.bin").write_bytes(TEN)
    (root / "empty.txt").write_bytes(b"")
    (root / "style.css").write_text("body{}")
    (root / "app.js").write_text("let a = 1;")
    (root / "mod.mjs").write_text("export {};")
    (root / "game.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "game.pck").write_bytes(b"GDPC")
    (root / "data.json").write_text('{"a": 1}')
    (root / "photo.jpeg").write_bytes(b"\xff\xd8\xff")
    (root / "clip.mp4").write_bytes(b"\0\0\0\x18ftyp")
    (root / "noext").write_bytes(b"plain")
    (root / "secret.env").write_text("PASSWORD=1")
    (root / "404.html").write_text("custom not found")
    (root / "caf\u00e9 menu.txt").write_text("accents")
    (root / "comp.js").write_text("console.log('identity');")
    (root / "comp.js.br").write_bytes(b"brotli-bytes")
    (root / "comp.js.gz").write_bytes(gzip.compress(b"console.log('identity');"))
    (root / "only.css").write_text("a{}")
    (root / "only.css.gz").write_bytes(gzip.compress(b"a{}"))
    sub = root / "sub"
    sub.mkdir()
    (sub / "index.html").write_text("sub index")
    (sub / "page.html").write_text("sub page")
    (root / "noindex").mkdir()
    (root / "noindex" / "file.txt").write_text("in noindex")
    os.symlink(tmp_path / "outside.txt", root / "link_out")
    os.symlink(tmp_path / "outside_dir", root / "link_dir_out")
    os.symlink(root / "about.html", root / "link_in.html")
    os.symlink(tmp_path / "outside.txt", root / "escape.js.br")
    return root


Serve = Callable[..., HttpServer]


@pytest.fixture
def files(serve: Serve, site: Path) -> Callable[..., HttpServer]:
    def _files(prefix: str = "/", root: Path | None = None, **options: Any) -> HttpServer:
        server_options = {k: options.pop(k) for k in list(options) if k in ("max_body_size",)}
        return serve({prefix: HttpFileRouter(root or site, **options)}, **server_options)

    return _files


def get(
    server: HttpServer,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Any:
    client = RawClient(server.port)
    try:
        return client.request(build_request(method, path, headers or {}))
    finally:
        client.close()


# --------------------------------------------------------------------------- files


def test_serves_a_file_with_validators(files: Callable[..., HttpServer], site: Path) -> None:
    server = files()
    r = get(server, "/about.html")
    assert r.status == 200
    assert r.body == b"about page"
    assert r.get("content-type") == "text/html; charset=utf-8"
    assert r.get("content-length") == "10"
    assert r.get("accept-ranges") == "bytes"
    etag = r.get("etag")
    assert etag and etag.startswith('"') and etag.endswith('"')
    mtime = int((site / "about.html").stat().st_mtime)
    assert r.get("last-modified") == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime))
    assert r.get("vary") is None
    assert r.get("cross-origin-opener-policy") is None


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("game.wasm", "application/wasm"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("game.pck", "application/octet-stream"),
        ("style.css", "text/css; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("photo.jpeg", "image/jpeg"),
        ("clip.mp4", "video/mp4"),
        ("noext", "application/octet-stream"),
        ("index.html", "text/html; charset=utf-8"),
    ],
)
def test_content_types(files: Callable[..., HttpServer], name: str, content_type: str) -> None:
    r = get(files(), "/" + name)
    assert r.status == 200
    assert r.get("content-type") == content_type


def test_percent_encoded_names(files: Callable[..., HttpServer]) -> None:
    r = get(files(), "/caf%C3%A9%20menu.txt")
    assert (r.status, r.body) == (200, b"accents")


def test_empty_file(files: Callable[..., HttpServer]) -> None:
    r = get(files(), "/empty.txt")
    assert (r.status, r.body, r.get("content-length")) == (200, b"", "0")


def test_head_has_no_body(files: Callable[..., HttpServer], raw: Callable[..., RawClient]) -> None:
    server = files()
    client = raw(server)
    r = client.request(build_request("HEAD", "/ten.bin"))
    assert r.status == 200
    assert r.get("content-length") == "10"
    # The connection carries on: the next response starts right after the head.
    r2 = client.request(build_request("GET", "/ten.bin"))
    assert r2.body == TEN


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_are_405(files: Callable[..., HttpServer], method: str) -> None:
    r = get(files(), "/about.html", method=method)
    assert r.status == 405
    assert r.get("allow") == "GET, HEAD"


def test_pipelined_requests_answer_in_order(
    files: Callable[..., HttpServer], raw: Callable[..., RawClient]
) -> None:
    server = files()
    client = raw(server)
    paths = ["/ten.bin", "/about.html", "/missing", "/sub", "/ten.bin"]
    client.send(b"".join(build_request("GET", p) for p in paths))
    statuses = [client.read_response() for _ in paths]
    assert [r.status for r in statuses] == [200, 200, 404, 301, 200]
    assert statuses[0].body == TEN and statuses[1].body == b"about page"


def test_mixed_with_python_routes(
    serve: Serve, site: Path, make_router: Callable[..., Any], raw: Callable[..., RawClient]
) -> None:
    def hello(request: Any, response: Any) -> None:
        time.sleep(0.05)
        response.send(200, "from python", "text/plain")

    server = serve([("/api", make_router(get=hello)), ("/static", HttpFileRouter(site))])
    client = raw(server)
    client.send(build_request("GET", "/api") + build_request("GET", "/static/ten.bin"))
    assert client.read_response().body == b"from python"
    assert client.read_response().body == TEN
    assert get(server, "/static/sub/page.html").body == b"sub page"
    r = get(server, "/static")
    assert (r.status, r.get("location")) == (301, "/static/")
    assert get(server, "/static/").body == b"<h1>home</h1>"
    assert get(server, "/staticx/ten.bin").status == 404


def test_file_larger_than_max_body_size(files: Callable[..., HttpServer], site: Path) -> None:
    data = os.urandom(256 * 1024)
    (site / "large.bin").write_bytes(data)
    r = get(files(max_body_size=1024), "/large.bin")
    assert r.status == 200
    assert r.body == data


# --------------------------------------------------------------------------- folders and options


def test_index_page_in_every_folder(files: Callable[..., HttpServer]) -> None:
    server = files()
    assert get(server, "/").body == b"<h1>home</h1>"
    assert get(server, "/sub/").body == b"sub index"
    assert get(server, "/noindex/").status == 404
    assert get(server, "/noindex/file.txt").body == b"in noindex"


def test_folder_without_slash_redirects_keeping_the_query(
    files: Callable[..., HttpServer],
) -> None:
    server = files()
    r = get(server, "/sub?x=1&y=%20")
    assert r.status == 301
    assert r.get("location") == "/sub/?x=1&y=%20"
    r = get(server, "/noindex")
    assert (r.status, r.get("location")) == (301, "/noindex/")


def test_custom_index_page(files: Callable[..., HttpServer]) -> None:
    server = files(index_page="about.html")
    assert get(server, "/").body == b"about page"
    assert get(server, "/sub/").status == 404


def test_extensions_are_tried(files: Callable[..., HttpServer]) -> None:
    server = files()
    assert get(server, "/about").body == b"about page"
    assert get(server, "/sub/page").body == b"sub page"
    assert get(server, "/about/").status == 404
    assert get(server, "/ten").status == 404
    server = files(extensions=["bin", ".txt"])
    assert get(server, "/ten").body == TEN
    assert get(server, "/empty").status == 200
    assert get(server, "/about").status == 404


def test_excluded_extensions_are_never_served(files: Callable[..., HttpServer]) -> None:
    server = files(exclude_extensions=["env", "JSON"])
    assert get(server, "/secret.env").status == 404
    assert get(server, "/data.json").status == 404
    assert get(server, "/about.html").status == 200
    server = files(exclude_extensions=["html"])
    assert get(server, "/about").status == 404
    assert get(server, "/link_in.html").status == 404
    assert get(server, "/").status == 404


def test_fallback_index_page_is_200(files: Callable[..., HttpServer]) -> None:
    server = files(fallback_page="index.html")
    r = get(server, "/some/client/route")
    assert (r.status, r.body) == (200, b"<h1>home</h1>")
    assert r.get("etag")
    assert get(server, "/about.html").body == b"about page"


def test_fallback_other_page_is_404(files: Callable[..., HttpServer]) -> None:
    server = files(fallback_page="404.html")
    r = get(server, "/missing")
    assert (r.status, r.body) == (404, b"custom not found")
    assert r.get("content-type") == "text/html; charset=utf-8"
    # A 404 is never a 304 nor a 206.
    r = get(server, "/missing", {"If-None-Match": "*", "Range": "bytes=0-1"})
    assert (r.status, r.body) == (404, b"custom not found")


def test_traversal_does_not_get_the_fallback(files: Callable[..., HttpServer]) -> None:
    r = get(files(fallback_page="index.html"), "/%2e%2e/outside.txt")
    assert (r.status, r.body) == (404, b"Not found")


def test_router_properties(site: Path) -> None:
    router = HttpFileRouter(
        str(site),
        index_page="home.html",
        fallback_page="index.html",
        extensions=["htm", "html"],
        exclude_extensions=["env"],
        cross_origin_isolation=True,
    )
    assert router.path == str(site)
    assert router.index_page == "home.html"
    assert router.fallback_page == "index.html"
    assert router.extensions == ["htm", "html"]
    assert router.exclude_extensions == ["env"]
    assert router.cross_origin_isolation is True
    default = HttpFileRouter(site)
    assert (default.index_page, default.fallback_page) == ("index.html", "")
    assert default.extensions == ["html"]
    assert default.exclude_extensions == []
    assert default.cross_origin_isolation is False
    with pytest.raises(AttributeError):
        router.index_page = "x"  # type: ignore[misc]


def test_router_arguments_are_checked(site: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HttpFileRouter(site / "missing")
    with pytest.raises(NotADirectoryError):
        HttpFileRouter(site / "about.html")
    for page in ["../outside.txt", "/etc/passwd", "a//b", ""]:
        with pytest.raises(ValueError):
            HttpFileRouter(site, index_page=page)
    with pytest.raises(ValueError):
        HttpFileRouter(site, fallback_page="../outside.txt")
    with pytest.raises(ValueError):
        HttpFileRouter(site, extensions=["a/b"])
    with pytest.raises(ValueError):
        HttpFileRouter(site, exclude_extensions=[""])


def test_regular_expression_prefix_is_refused(serve: Serve, site: Path) -> None:
    server = serve()
    with pytest.raises(ValueError):
        server.register_router("^/x", HttpFileRouter(site))


# --------------------------------------------------------------------------- path safety

TRAVERSALS = [
    "/../outside.txt",
    "/../../../../../../etc/passwd",
    "/%2e%2e/outside.txt",
    "/%2E%2E/outside.txt",
    "/.%2e/outside.txt",
    "/%2e./outside.txt",
    "/%2e%2e%2foutside.txt",
    "/..%2foutside.txt",
    "/..%2Foutside.txt",
    "/..%5coutside.txt",
    "/..%5Coutside.txt",
    "/..\\outside.txt",
    "/sub/..\\..\\outside.txt",
    "/%252e%252e/outside.txt",
    "/%252e%252e%252foutside.txt",
    "/sub/../../outside.txt",
    "/sub/%2e%2e/%2e%2e/outside.txt",
    "/sub/..%2f..%2foutside.txt",
    "/./about.html",
    "/sub/./page.html",
    "/sub/../about.html",
    "/about.html%00",
    "/about.html%00.txt",
    "/%00",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/%2Fetc/passwd",
    "/%5cetc%5cpasswd",
    "/sub//page.html",
    "/link_out",
    "/link_dir_out/x.txt",
    "/link_dir_out/",
    "/../rootsibling/x.txt",
    "/..%2frootsibling%2fx.txt",
    "/C:/Windows/win.ini",
    "/c%3a%5cwindows",
    "/%0a",
    "/about.html%0d%0aX-Injected:%201",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_is_refused_with_404(files: Callable[..., HttpServer], target: str) -> None:
    server = files()
    r = get(server, target)
    assert r.status == 404, target
    assert SECRET not in r.body
    assert r.get("x-injected") is None


@pytest.mark.parametrize(
    "target", ["/static/../outside.txt", "/static/%2e%2e/outside.txt", "/static/..%2foutside.txt"]
)
def test_traversal_below_a_prefix(files: Callable[..., HttpServer], target: str) -> None:
    r = get(files("/static"), target)
    assert r.status == 404
    assert SECRET not in r.body


def test_overlong_utf8_dots_are_refused(files: Callable[..., HttpServer]) -> None:
    # Not UTF-8 once decoded: refused before routing (400), so never a file.
    r = get(files(), "/%c0%ae%c0%ae/outside.txt")
    assert r.status in (400, 404)
    assert SECRET not in r.body


def test_symlink_inside_the_root_is_served(files: Callable[..., HttpServer]) -> None:
    assert get(files(), "/link_in.html").body == b"about page"


def test_root_behind_a_symlink(serve: Serve, site: Path, tmp_path: Path) -> None:
    link = tmp_path / "root-link"
    os.symlink(site, link)
    server = serve({"/": HttpFileRouter(link)})
    assert get(server, "/about.html").body == b"about page"
    assert get(server, "/%2e%2e/outside.txt").status == 404


def test_precompressed_sibling_pointing_outside_is_ignored(
    files: Callable[..., HttpServer], site: Path
) -> None:
    (site / "escape.js").write_text("inside")
    r = get(files(), "/escape.js", {"Accept-Encoding": "br"})
    assert (r.status, r.body, r.get("content-encoding")) == (200, b"inside", None)


def test_fifo_is_not_served(files: Callable[..., HttpServer], site: Path) -> None:
    os.mkfifo(site / "pipe.txt")
    r = get(files(), "/pipe.txt")
    assert r.status == 404


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; test_cli checks 403")
def test_unreadable_file_is_403(files: Callable[..., HttpServer], site: Path) -> None:
    (site / "locked.txt").write_text("x")
    (site / "locked.txt").chmod(0)
    r = get(files(), "/locked.txt")
    assert r.status == 403
    assert r.body != b"x"


# --------------------------------------------------------------------------- validators


def test_if_none_match(files: Callable[..., HttpServer]) -> None:
    server = files()
    etag = get(server, "/ten.bin").get("etag")
    assert etag
    r = get(server, "/ten.bin", {"If-None-Match": etag})
    assert r.status == 304
    assert r.body == b""
    assert r.get("etag") == etag
    assert r.get("content-length") is None
    assert r.get("last-modified")
    assert get(server, "/ten.bin", {"If-None-Match": f'"nope", W/{etag}'}).status == 304
    assert get(server, "/ten.bin", {"If-None-Match": "*"}).status == 304
    assert get(server, "/ten.bin", {"If-None-Match": '"nope"'}).status == 200
    assert get(server, "/ten.bin", {"If-None-Match": etag}, method="HEAD").status == 304


def test_if_modified_since(files: Callable[..., HttpServer]) -> None:
    server = files()
    last_modified = get(server, "/ten.bin").get("last-modified")
    assert last_modified
    assert get(server, "/ten.bin", {"If-Modified-Since": last_modified}).status == 304
    assert (
        get(server, "/ten.bin", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status
        == 200
    )
    assert get(server, "/ten.bin", {"If-Modified-Since": "garbage"}).status == 200


def test_if_none_match_takes_precedence(files: Callable[..., HttpServer]) -> None:
    server = files()
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    r = get(server, "/ten.bin", {"If-None-Match": '"other"', "If-Modified-Since": future})
    assert r.status == 200
    assert r.body == TEN


def test_changed_file_changes_etag(files: Callable[..., HttpServer], site: Path) -> None:
    server = files()
    before = get(server, "/ten.bin").get("etag")
    (site / "ten.bin").write_bytes(b"changed!!!!")
    r = get(server, "/ten.bin", {"If-None-Match": before or ""})
    assert r.status == 200
    assert r.get("etag") != before


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("range_", "status", "body", "content_range"),
    [
        ("bytes=0-0", 206, b"0", "bytes 0-0/10"),
        ("bytes=9-9", 206, b"9", "bytes 9-9/10"),
        ("bytes=9-", 206, b"9", "bytes 9-9/10"),
        ("bytes=0-", 206, TEN, "bytes 0-9/10"),
        ("bytes=-1", 206, b"9", "bytes 9-9/10"),
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=-10", 206, TEN, "bytes 0-9/10"),
        ("bytes=-100", 206, TEN, "bytes 0-9/10"),
        ("bytes=10-", 416, None, "bytes */10"),
        ("bytes=10-20", 416, None, "bytes */10"),
        ("bytes=-0", 416, None, "bytes */10"),
        ("bytes=0-1,3-4", 200, TEN, None),
        ("bytes=5-2", 200, TEN, None),
        ("items=0-1", 200, TEN, None),
        ("bytes=x-y", 200, TEN, None),
    ],
)
def test_ranges(
    files: Callable[..., HttpServer],
    range_: str,
    status: int,
    body: bytes | None,
    content_range: str | None,
) -> None:
    r = get(files(), "/ten.bin", {"Range": range_})
    assert r.status == status
    assert r.get("content-range") == content_range
    if body is not None:
        assert r.body == body
        assert r.get("content-length") == str(len(body))
        assert r.get("content-type") == "application/octet-stream"


def test_range_on_an_empty_file_is_416(files: Callable[..., HttpServer]) -> None:
    r = get(files(), "/empty.txt", {"Range": "bytes=0-"})
    assert (r.status, r.get("content-range")) == (416, "bytes */0")


def test_range_is_ignored_on_head(files: Callable[..., HttpServer]) -> None:
    r = get(files(), "/ten.bin", {"Range": "bytes=0-1"}, method="HEAD")
    assert (r.status, r.get("content-length")) == (200, "10")


def test_if_range(files: Callable[..., HttpServer]) -> None:
    server = files()
    first = get(server, "/ten.bin")
    etag, last_modified = first.get("etag"), first.get("last-modified")
    assert etag and last_modified
    assert get(server, "/ten.bin", {"Range": "bytes=0-1", "If-Range": etag}).status == 206
    assert get(server, "/ten.bin", {"Range": "bytes=0-1", "If-Range": '"old"'}).status == 200
    weak = get(server, "/ten.bin", {"Range": "bytes=0-1", "If-Range": "W/" + etag})
    assert weak.status == 200
    dated = get(server, "/ten.bin", {"Range": "bytes=0-1", "If-Range": last_modified})
    assert (dated.status, dated.body) == (206, b"01")
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert get(server, "/ten.bin", {"Range": "bytes=0-1", "If-Range": old}).status == 200


def test_conditional_before_range(files: Callable[..., HttpServer]) -> None:
    server = files()
    etag = get(server, "/ten.bin").get("etag") or ""
    assert get(server, "/ten.bin", {"Range": "bytes=0-1", "If-None-Match": etag}).status == 304


# --------------------------------------------------------------------------- precompressed


def test_precompressed_siblings(files: Callable[..., HttpServer], site: Path) -> None:
    server = files()
    br = get(server, "/comp.js", {"Accept-Encoding": "gzip, deflate, br"})
    assert (br.status, br.body) == (200, b"brotli-bytes")
    assert br.get("content-encoding") == "br"
    assert br.get("vary") == "Accept-Encoding"
    assert br.get("content-type") == "text/javascript; charset=utf-8"
    gz = get(server, "/comp.js", {"Accept-Encoding": "gzip"})
    assert gz.get("content-encoding") == "gzip"
    assert gzip.decompress(gz.body) == b"console.log('identity');"
    assert gz.get("etag") != br.get("etag")
    plain = get(server, "/comp.js")
    assert plain.body == b"console.log('identity');"
    assert plain.get("content-encoding") is None
    assert plain.get("vary") == "Accept-Encoding"
    refused = get(server, "/comp.js", {"Accept-Encoding": "br;q=0, gzip;q=0"})
    assert refused.get("content-encoding") is None
    only = get(server, "/only.css", {"Accept-Encoding": "br"})
    assert (only.get("content-encoding"), only.get("vary")) == (None, "Accept-Encoding")
    none = get(server, "/about.html", {"Accept-Encoding": "br, gzip"})
    assert none.get("vary") is None and none.get("content-encoding") is None
    etag = br.get("etag") or ""
    again = get(server, "/comp.js", {"Accept-Encoding": "br", "If-None-Match": etag})
    assert (again.status, again.get("vary")) == (304, "Accept-Encoding")
    part = get(server, "/comp.js", {"Accept-Encoding": "br", "Range": "bytes=0-5"})
    assert (part.status, part.body, part.get("content-encoding")) == (206, b"brotli", "br")


# --------------------------------------------------------------------------- cross-origin isolation

ISOLATION = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.mark.parametrize("path", ["/", "/game.wasm", "/missing", "/sub"])
def test_cross_origin_isolation(files: Callable[..., HttpServer], path: str) -> None:
    r = get(files(cross_origin_isolation=True), path)
    for name, value in ISOLATION.items():
        assert r.get(name) == value, (path, name)
    plain = get(files(), path)
    for name in ISOLATION:
        assert plain.get(name) is None


def test_cross_origin_isolation_on_304(files: Callable[..., HttpServer]) -> None:
    server = files(cross_origin_isolation=True)
    etag = get(server, "/").get("etag") or ""
    r = get(server, "/", {"If-None-Match": etag})
    assert r.status == 304
    assert r.get("cross-origin-embedder-policy") == "require-corp"


def test_cors_on_files(serve: Serve, site: Path) -> None:
    server = serve({"/": HttpFileRouter(site)}, cors=["https://a.example"])
    r = get(server, "/ten.bin", {"Origin": "https://a.example"})
    assert r.get("access-control-allow-origin") == "https://a.example"
    preflight = get(
        server,
        "/ten.bin",
        {"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
        method="OPTIONS",
    )
    assert preflight.status == 204


# --------------------------------------------------------------------------- access log


def test_access_log(serve: Serve, site: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="godottpd.access")
    server = serve({"/": HttpFileRouter(site)}, access_log=True)
    get(server, "/ten.bin?x=1")
    get(server, "/missing", method="HEAD")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "godottpd.access"]

    assert wait_for(lambda: len(lines()) >= 2)
    first, second = lines()[:2]
    assert first.startswith("127.0.0.1 - - [")
    assert first.endswith('"GET /ten.bin?x=1 HTTP/1.1" 200 10')
    assert second.endswith('"HEAD /missing HTTP/1.1" 404 0')


def test_no_access_log_by_default(
    serve: Serve, site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="godottpd.access")
    server = serve({"/": HttpFileRouter(site)})
    get(server, "/ten.bin")
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.name == "godottpd.access"]


# --------------------------------------------------------------------------- big and changing files


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def test_big_sparse_file_streams_with_flat_memory(
    files: Callable[..., HttpServer], site: Path, request: pytest.FixtureRequest
) -> None:
    size = 200 * 1024 * 1024
    with open(site / "big.bin", "wb") as f:
        f.truncate(size)
        f.seek(size - 4)
        f.write(b"TAIL")
    server = files()
    before = _max_rss_bytes()
    sock = socket.create_connection((HOST, server.port), timeout=30)
    request.addfinalizer(sock.close)
    sock.sendall(build_request("GET", "/big.bin"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    head, _, rest = head.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {size}".encode() in head
    total = len(rest)
    tail = bytes(rest[-4:])
    buffer = bytearray(1 << 20)
    while total < size:
        n = sock.recv_into(buffer)
        assert n, f"closed after {total} bytes"
        total += n
        tail = (tail + bytes(buffer[:n]))[-4:]
    sock.close()
    assert total == size
    assert tail == b"TAIL"
    grown = _max_rss_bytes() - before
    assert grown < 40 * 1024 * 1024, f"peak memory grew by {grown} bytes"


def test_range_at_the_end_of_a_big_file(files: Callable[..., HttpServer], site: Path) -> None:
    size = 3 * 1024 * 1024 * 1024
    with open(site / "huge.bin", "wb") as f:
        f.truncate(size)
        f.seek(size - 3)
        f.write(b"END")
    r = get(files(), "/huge.bin", {"Range": "bytes=-3"})
    assert (r.status, r.body) == (206, b"END")
    assert r.get("content-range") == f"bytes {size - 3}-{size - 1}/{size}"


def test_file_shrinking_while_served(
    files: Callable[..., HttpServer], site: Path, request: pytest.FixtureRequest
) -> None:
    size = 64 * 1024 * 1024
    path = site / "shrinking.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    server = files()
    sock = socket.create_connection((HOST, server.port), timeout=10)
    request.addfinalizer(sock.close)
    sock.sendall(build_request("GET", "/shrinking.bin"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    head, _, body = head.partition(b"\r\n\r\n")
    assert f"Content-Length: {size}".encode() in head
    with open(path, "r+b") as f:
        f.truncate(1024 * 1024)
    total = len(body)
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    sock.close()
    # The server cannot keep its promise: it closes the connection instead of lying.
    assert total < size
    # And it carries on serving.
    r = get(server, "/shrinking.bin")
    assert (r.status, len(r.body)) == (200, 1024 * 1024)


def test_file_growing_while_served(
    files: Callable[..., HttpServer], site: Path, raw: Callable[..., RawClient]
) -> None:
    size = 16 * 1024 * 1024
    path = site / "growing.bin"
    path.write_bytes(b"a" * size)
    server = files()
    client = raw(server, timeout=10)
    client.send(build_request("GET", "/growing.bin"))
    time.sleep(0.05)
    with open(path, "ab") as f:
        f.write(b"b" * size)
    r = client.read_response()
    assert r.status == 200
    assert r.get("content-length") == str(size)
    assert len(r.body) == size
    # The connection stays in sync: the next response parses.
    r2 = client.request(build_request("GET", "/ten.bin"))
    assert r2.body == TEN
