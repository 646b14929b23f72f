"""GodotTPD code runs unchanged (issue 13): the file router's options dict, `.gd` never
served, `HttpFileRouter` an `HttpRouter`, GodotTPD's cookie options, `bool` ports, and the
errors users meet (`BadRequest`, paths in OS errors, caps, bounded waits, `poll` and Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import godottpd
import pytest
from godottpd import BadRequest, HttpFileRouter, HttpRouter, HttpServer

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Godot project folder: pages, a script and a scene."""
    (tmp_path / "index.html").write_text("<h1>index</h1>")
    (tmp_path / "about.html").write_text("<h1>about</h1>")
    (tmp_path / "app.html").write_text("<h1>app</h1>")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "player.gd").write_text("extends Node\n")
    (tmp_path / "scripts" / "Enemy.GD").write_text("extends Node\n")
    (tmp_path / "game.pck").write_bytes(b"PCK")
    return tmp_path


# --------------------------------------------------------------------------- #
# HttpFileRouter as GodotTPD builds it
# --------------------------------------------------------------------------- #


def test_file_router_takes_godottpd_options_dict(serve, fetch, project: Path) -> None:
    router = HttpFileRouter(str(project), {"fallback_page": "app.html", "extensions": ["html"]})
    assert router.fallback_page == "app.html"
    assert router.extensions == ["html"]
    srv = serve({"/": router})
    assert fetch(srv, "GET", "/about").body == b"<h1>about</h1>"
    missing = fetch(srv, "GET", "/no/such/page")
    assert (missing.status, missing.body) == (404, b"<h1>app</h1>")


def test_file_router_options_dict_with_every_key(project: Path) -> None:
    router = HttpFileRouter(
        project,
        {
            "index_page": "about.html",
            "fallback_page": "",
            "extensions": ["htm", "html"],
            "exclude_extensions": ["pck"],
            "cross_origin_isolation": True,
            "cache_control": "no-cache",
        },
    )
    assert router.index_page == "about.html"
    assert router.exclude_extensions == ["pck"]
    assert router.cross_origin_isolation is True
    assert router.cache_control == "no-cache"


def test_file_router_options_dict_errors(project: Path) -> None:
    with pytest.raises(ValueError, match='unknown HttpFileRouter option "fallback"'):
        HttpFileRouter(project, {"fallback": "x"})
    with pytest.raises(TypeError, match="both"):
        HttpFileRouter(project, {"extensions": ["html"]}, extensions=["htm"])
    with pytest.raises(TypeError, match="list of str"):
        HttpFileRouter(project, {"extensions": "html"})
    with pytest.raises(TypeError):
        HttpFileRouter(project, 3)  # type: ignore[arg-type]


def test_file_router_keywords_keep_working(serve, fetch, project: Path) -> None:
    srv = serve({"/": HttpFileRouter(project, "about.html", fallback_page="", extensions=[])})
    assert fetch(srv, "GET", "/").body == b"<h1>about</h1>"
    assert fetch(srv, "GET", "/about").status == 404


@pytest.mark.parametrize("exclude", [[], ["txt"]])
def test_gd_scripts_are_never_served(serve, fetch, project: Path, exclude: list[str]) -> None:
    srv = serve({"/": HttpFileRouter(project, exclude_extensions=exclude, extensions=["gd"])})
    for path in (
        "/scripts/player.gd",
        "/scripts/Enemy.GD",
        "/scripts/player",
        "/scripts/%70layer.gd",
    ):
        r = fetch(srv, "GET", path)
        assert r.status == 404, path
        assert b"extends" not in r.body
    assert fetch(srv, "GET", "/game.pck").body == b"PCK"


def test_file_router_is_an_http_router_answered_in_rust(serve, fetch, project: Path) -> None:
    router = HttpFileRouter(project)
    assert isinstance(router, HttpRouter)
    assert issubclass(HttpFileRouter, HttpRouter)
    srv = serve({"/static": router})
    r = fetch(srv, "GET", "/static/about.html")
    assert r.status == 200 and r.headers["ETag"]  # served by the Rust file router
    assert fetch(srv, "POST", "/static/about.html").status == 405


def test_cache_control_option(serve, fetch, project: Path) -> None:
    srv = serve(
        {
            "/plain": HttpFileRouter(project),
            "/fresh": HttpFileRouter(project, cache_control="no-cache"),
            "/game": HttpFileRouter(project, {"cache_control": "public, max-age=60"}),
        }
    )
    assert fetch(srv, "GET", "/plain/game.pck").headers.get("Cache-Control") is None
    r = fetch(srv, "GET", "/fresh/game.pck")
    assert r.headers["Cache-Control"] == "no-cache"
    etag = r.headers["ETag"]
    revalidated = fetch(srv, "GET", "/fresh/game.pck", headers={"If-None-Match": etag})
    assert revalidated.status == 304
    assert revalidated.headers["Cache-Control"] == "no-cache"
    assert fetch(srv, "GET", "/game/game.pck").headers["Cache-Control"] == "public, max-age=60"
    for bad in ("", "a\r\nX-Evil: 1", "x\x00"):
        with pytest.raises(ValueError, match="cache_control"):
            HttpFileRouter(project, cache_control=bad)


def test_os_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing-dir"
    with pytest.raises(FileNotFoundError) as caught:
        HttpFileRouter(missing)
    assert caught.value.filename == str(missing)
    assert str(missing) in str(caught.value)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError) as not_folder:
        HttpFileRouter(str(a_file))
    assert not_folder.value.filename == str(a_file)


# --------------------------------------------------------------------------- #
# Cookies as GodotTPD code writes them
# --------------------------------------------------------------------------- #


def cookie_lines(serve, fetch, options: dict[str, Any]) -> list[str]:
    class Cookie(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            response.cookie("a", "1", options)
            response.send(200, "ok")

    srv = serve({"/": Cookie()})
    r = fetch(srv, "GET", "/")
    assert r.status == 200, r.body
    return list(r.headers.get_all("Set-Cookie") or [])


def test_godottpd_cookie_options(serve, fetch) -> None:
    lines = cookie_lines(
        serve, fetch, {"max-age": "60", "sameSite": True, "secure": "true", "httpOnly": "true"}
    )
    assert lines == ["a=1; Max-Age=60; Secure; HttpOnly; SameSite=Strict"]


def test_same_site_false_sends_no_attribute(serve, fetch) -> None:
    assert cookie_lines(serve, fetch, {"sameSite": False, "max-age": "-1"}) == ["a=1; Max-Age=-1"]


class _Recorder(HttpRouter):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.error: BaseException | None = None
        self.done = threading.Event()

    def handle_get(self, request: Any, response: Any) -> None:
        try:
            response.cookie("a", "1", self.options)
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()
        response.send(200, "ok")


@pytest.mark.parametrize(
    "options",
    [
        {"partitioned": True},
        {"partitioned": "true", "secure": "false"},
        {"max-age": "6x"},
        {"max-age": ""},
        {"max-age": "1e3"},
        {"max-age": "99999999999999999999"},
        {"max-age": True},
        {"sameSite": "sometimes"},
    ],
)
def test_bad_cookie_options_are_value_errors(serve, fetch, options: dict[str, Any]) -> None:
    recorder = _Recorder(options)
    srv = serve({"/": recorder})
    assert fetch(srv, "GET", "/").status == 200
    assert recorder.done.wait(5)
    assert isinstance(recorder.error, ValueError), recorder.error


def test_partitioned_with_secure_is_sent(serve, fetch) -> None:
    lines = cookie_lines(serve, fetch, {"partitioned": True, "secure": True})
    assert lines == ["a=1; Secure; Partitioned"]


# --------------------------------------------------------------------------- #
# HttpServer arguments
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("port", [True, False, 8080.0, "8080"])
def test_port_must_be_an_int(port: Any) -> None:
    with pytest.raises(TypeError, match="port must be an int"):
        HttpServer(port)
    server = HttpServer(0)
    with pytest.raises(TypeError):
        server.port = port


def test_port_range_is_still_a_value_error() -> None:
    for port in (-1, 65536, 1 << 70):
        with pytest.raises(ValueError, match=r"0\.\.=65535"):
            HttpServer(port)


@pytest.mark.parametrize(
    ("name", "value", "cap"),
    [("io_threads", 65, "64"), ("io_threads", 10000, "64"), ("handler_threads", 257, "256")],
)
def test_thread_counts_past_the_cap_are_value_errors(name: str, value: int, cap: str) -> None:
    with pytest.raises(ValueError, match=rf"{name} must be in \d+..={cap}, not {value}"):
        HttpServer(0, **{name: value})
    HttpServer(0, **{name: int(cap)})  # the cap itself is allowed


@pytest.mark.parametrize("grace", [1e20, 9.3e18, 1e10, -1.0, float("inf"), float("nan")])
def test_shutdown_grace_is_bounded(grace: float) -> None:
    with pytest.raises(ValueError, match="shutdown_grace"):
        HttpServer(0, shutdown_grace=grace)


def test_largest_shutdown_grace_stops_at_once() -> None:
    server = HttpServer(0, bind_address=HOST, shutdown_grace=1e9)
    server.start()
    server.stop()  # no connection is open: nothing to wait for, and no overflow
    assert not server.is_running


# --------------------------------------------------------------------------- #
# poll(): huge timeouts and Ctrl-C
# --------------------------------------------------------------------------- #


def _get_in_thread(port: int, path: str) -> threading.Thread:
    import http.client

    def run() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        conn.request("GET", path)
        conn.getresponse().read()
        conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_poll_with_a_huge_timeout_runs_and_keeps_working(serve, make_router) -> None:
    router = make_router(get=lambda q, s: s.send(200, "polled", "text/plain"))
    srv = serve({"/": router}, threaded=False)
    for timeout in (1e20, 1e300, 5.0):
        client = _get_in_thread(srv.port, "/")
        assert srv.poll(timeout) == 1
        client.join(10)
        assert not client.is_alive()
    assert srv.poll() == 0
    with pytest.raises(ValueError):
        srv.poll(float("inf"))


def _wait_until_sleeping(pid: int) -> None:
    """Waits until the process's main thread sleeps in the kernel (state S in /proc)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "S":
                return
        time.sleep(0.005)


POLL_CHILD = """
import sys
from godottpd import HttpServer
server = HttpServer(0, bind_address="127.0.0.1", threaded=False)
server.start()
try:
    print("ready", flush=True)
    server.poll(float(sys.argv[1]))
except KeyboardInterrupt:
    print("interrupted", flush=True)
server.stop()
"""


@pytest.mark.parametrize("timeout", ["5", "1e6", "1e20"])
def test_poll_wakes_for_ctrl_c(timeout: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", POLL_CHILD, timeout],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    _wait_until_sleeping(child.pid)  # in poll()'s wait, not before it
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=4 if timeout == "5" else 20)
    assert out == b"interrupted\n", err
    assert child.returncode == 0


# --------------------------------------------------------------------------- #
# BadRequest, request.text and request.host
# --------------------------------------------------------------------------- #


def test_bad_request_is_declared_once_and_exported() -> None:
    assert issubclass(BadRequest, ValueError)
    assert godottpd.BadRequest is godottpd._godottpd.BadRequest
    assert "BadRequest" in godottpd.__all__


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{nope"),
        ("application/json; charset=utf-8", b'"\xff"'),
        ("application/json; charset=klingon", b"{}"),
        ("application/x-www-form-urlencoded", "é=1".encode()),
        ("application/x-www-form-urlencoded", b"a=%ff"),
        ("multipart/form-data", b"--x\r\n"),
    ],
)
def test_malformed_bodies_raise_bad_request_and_answer_400(
    serve, make_router, fetch, probe, content_type: str, body: bytes
) -> None:
    parsed = probe(lambda request: request.get_body_parsed())
    srv = serve({"/probe": parsed, "/": make_router(post=lambda q, s: q.get_body_parsed())})
    fetch(srv, "POST", "/probe", body=body, headers={"Content-Type": content_type})
    with pytest.raises(BadRequest):
        parsed.result()
    r = fetch(srv, "POST", "/", body=body, headers={"Content-Type": content_type})
    assert r.status == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.body and b"Internal" not in r.body


def test_handlers_may_raise_bad_request(serve, make_router, fetch, caplog) -> None:
    def refuse(request: Any, response: Any) -> None:
        raise BadRequest("name is required")

    def empty(request: Any, response: Any) -> None:
        raise BadRequest

    srv = serve({"/why": make_router(get=refuse), "/": make_router(get=empty)})
    r = fetch(srv, "GET", "/why")
    assert (r.status, r.body) == (400, b"name is required")
    r = fetch(srv, "GET", "/")
    assert (r.status, r.body) == (400, b"Bad Request")
    assert not [rec for rec in caplog.records if rec.name == "godottpd" and rec.exc_info]


def test_request_text_decodes_by_charset(serve, fetch, probe) -> None:
    text = probe(lambda request: request.text)
    srv = serve({"/": text})
    fetch(
        srv,
        "POST",
        "/",
        body="héllo".encode("latin-1"),
        headers={"Content-Type": "text/plain; charset=latin-1"},
    )
    assert text.result() == "héllo"
    fetch(srv, "POST", "/", body="héllo".encode())
    assert text.result() == "héllo"
    fetch(srv, "POST", "/", body=b"\xff", headers={"Content-Type": "text/plain"})
    with pytest.raises(BadRequest):
        text.result()


def test_request_host(serve, raw, probe) -> None:
    host = probe(lambda request: request.host)
    srv = serve({"/": host})
    c = raw(srv)
    assert c.request(b"GET / HTTP/1.1\r\nHost: example.com:81\r\n\r\n").status == 200
    assert host.result() == "example.com:81"
    assert c.request(b"GET http://real.example/ HTTP/1.1\r\nHost: fake\r\n\r\n").status == 200
    assert host.result() == "real.example"
    assert c.request(b"GET / HTTP/1.0\r\n\r\n").status == 200
    assert host.result() == ""


# --------------------------------------------------------------------------- #
# examples/hello.py
# --------------------------------------------------------------------------- #


def test_hello_example_port_zero_and_clean_ctrl_c(fetch) -> None:
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "hello.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    line = child.stdout.readline().decode()
    port = int(line.split("localhost:")[1].split("/")[0])
    assert port != 0
    assert fetch(port, "GET", "/hello/world").body == b"Hello, world!"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=20)
    assert child.returncode == 0
    assert b"Traceback" not in err
