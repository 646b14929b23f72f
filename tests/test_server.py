"""HttpServer lifecycle: construction, start/stop, context manager, serve_forever, poll mode."""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time
from typing import Any

import pytest
from godottpd import HttpServer

HOST = "127.0.0.1"


def _refused(port: int, host: str = HOST) -> bool:
    try:
        s = socket.create_connection((host, port), timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    # Accepted: make sure it is not just a lingering backlog with nobody behind it.
    try:
        s.settimeout(1)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------- #
# Construction
# --------------------------------------------------------------------------- #


def test_defaults() -> None:
    srv = HttpServer()
    assert srv.port == 8080
    assert srv.bind_address == "*"
    assert srv.server_identifier == "GodotTPD"
    assert srv.is_running is False


def test_constructor_values_are_kept() -> None:
    srv = HttpServer(1234, "127.0.0.1", "MyServer/2.0")
    assert srv.port == 1234
    assert srv.bind_address == "127.0.0.1"
    assert srv.server_identifier == "MyServer/2.0"
    assert srv.is_running is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": -1},
        {"port": 65536},
        {"port": 100000},
        {"max_request_line": 0},
        {"max_request_line": -1},
        {"max_head_size": 0},
        {"max_head_size": -5},
        {"max_headers": 0},
        {"max_headers": -1},
        {"max_body_size": -1},
        {"header_timeout": 0},
        {"header_timeout": -1.0},
        {"body_timeout": -1.0},
        {"keepalive_timeout": -1.0},
        {"write_timeout": -1.0},
        {"max_connections": 0},
        {"max_connections": -1},
        {"shutdown_grace": -1.0},
        {"io_threads": 0},
        {"io_threads": -2},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        HttpServer(**kwargs)


def test_limits_are_keyword_only() -> None:
    # port, bind_address, server_identifier are the only positional parameters
    with pytest.raises(TypeError):
        HttpServer(0, HOST, "x", False)  # type: ignore[misc]


# --------------------------------------------------------------------------- #
# start / stop
# --------------------------------------------------------------------------- #


def test_port_zero_gets_real_port_and_serves(serve, fetch) -> None:
    srv = serve()
    assert srv.is_running is True
    assert isinstance(srv.port, int)
    assert 0 < srv.port < 65536
    r = fetch(srv, "GET", "/nothing-here")
    assert r.status == 404
    assert r.body == b"Not found"


def test_start_and_stop_are_safe_twice(make_router, fetch) -> None:
    srv = HttpServer(port=0, bind_address=HOST)
    srv.register_router("/", make_router(get=lambda q, s: s.send(200, "up", "text/plain")))
    try:
        srv.start()
        port = srv.port
        assert srv.is_running
        srv.start()  # no-op
        assert srv.is_running
        assert srv.port == port
        assert fetch(port, "GET", "/").body == b"up"
    finally:
        srv.stop()
    assert srv.is_running is False
    srv.stop()  # no-op, must not raise
    assert srv.is_running is False
    assert _refused(port)


def test_stop_before_start_is_harmless() -> None:
    srv = HttpServer(port=0, bind_address=HOST)
    srv.stop()
    assert srv.is_running is False


def test_busy_port_raises_oserror() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        srv = HttpServer(port=port, bind_address=HOST)
        with pytest.raises(OSError):
            srv.start()
        assert srv.is_running is False
        srv.stop()
    finally:
        blocker.close()


def test_second_server_on_same_port_raises_oserror(serve) -> None:
    first = serve()
    second = HttpServer(port=first.port, bind_address=HOST)
    try:
        with pytest.raises(OSError):
            second.start()
        assert second.is_running is False
    finally:
        second.stop()
    assert first.is_running


def test_context_manager(make_router, fetch) -> None:
    srv = HttpServer(port=0, bind_address=HOST)
    srv.register_router("/", make_router(get=lambda q, s: s.send(200, "ctx", "text/plain")))
    with srv as entered:
        assert entered is srv
        assert srv.is_running
        port = srv.port
        assert port != 0
        assert fetch(port, "GET", "/").body == b"ctx"
    assert srv.is_running is False
    assert _refused(port)


def test_context_manager_stops_on_exception() -> None:
    srv = HttpServer(port=0, bind_address=HOST)
    with pytest.raises(ZeroDivisionError):
        with srv:
            port = srv.port
            1 / 0  # noqa: B018
    assert srv.is_running is False
    assert _refused(port)


def test_bind_star_listens_on_ipv4_and_ipv6(make_router) -> None:
    srv = HttpServer(port=0, bind_address="*")
    srv.register_router("/", make_router(get=lambda q, s: s.send(200, "both", "text/plain")))
    with srv:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect((host, srv.port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200"), (host, data[:80])
                assert data.endswith(b"both")


def test_stop_lets_in_flight_request_finish(serve, make_router, fetch) -> None:
    entered = threading.Event()

    def slow(req: Any, res: Any) -> None:
        entered.set()
        time.sleep(0.4)
        res.send(200, "finished", "text/plain")

    srv = serve({"/slow": make_router(get=slow)}, shutdown_grace=5.0)
    result: dict[str, Any] = {}

    def client() -> None:
        try:
            result["r"] = fetch(srv, "GET", "/slow")
        except Exception as exc:
            result["err"] = exc

    t = threading.Thread(target=client)
    t.start()
    assert entered.wait(5)
    srv.stop()
    assert srv.is_running is False
    t.join(5)
    assert "err" not in result, result.get("err")
    assert result["r"].status == 200
    assert result["r"].body == b"finished"


def test_stop_gives_up_after_shutdown_grace(serve, make_router, fetch) -> None:
    entered = threading.Event()
    release = threading.Event()

    def stuck(req: Any, res: Any) -> None:
        entered.set()
        release.wait(6)
        try:
            res.send(200, "late", "text/plain")
        except Exception:
            pass

    srv = serve({"/stuck": make_router(get=stuck)}, shutdown_grace=0.5)
    t = threading.Thread(target=lambda: _swallow(fetch, srv, "GET", "/stuck"), daemon=True)
    t.start()
    try:
        assert entered.wait(5)
        t0 = time.monotonic()
        srv.stop()
        elapsed = time.monotonic() - t0
        assert elapsed < 3.0, f"stop() took {elapsed:.2f}s with shutdown_grace=0.5"
        assert srv.is_running is False
    finally:
        release.set()
        t.join(5)


def _swallow(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        pass


def test_stop_closes_idle_keepalive_connections_promptly(serve, make_router, raw, build) -> None:
    srv = serve(
        {"/": make_router(get=lambda q, s: s.send(200, "x", "text/plain"))},
        shutdown_grace=5.0,
        keepalive_timeout=30.0,
    )
    c = raw(srv)
    assert c.request(build("GET", "/")).status == 200
    t0 = time.monotonic()
    srv.stop()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"stop() waited {elapsed:.2f}s on an idle keep-alive connection"
    assert c.is_closed(timeout=3)


# --------------------------------------------------------------------------- #
# serve_forever
# --------------------------------------------------------------------------- #


def test_serve_forever_until_stop_from_another_thread(make_router, fetch, wait) -> None:
    srv = HttpServer(port=0, bind_address=HOST)
    srv.register_router("/", make_router(get=lambda q, s: s.send(200, "forever", "text/plain")))
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            srv.serve_forever()
            outcome["returned"] = True
        except BaseException as exc:
            outcome["err"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        assert wait(lambda: srv.is_running, 5), "serve_forever never started the server"
        assert srv.port != 0
        assert fetch(srv, "GET", "/").body == b"forever"
        assert t.is_alive(), "serve_forever returned while the server is running"
    finally:
        srv.stop()
    t.join(5)
    assert not t.is_alive(), "serve_forever did not return after stop()"
    assert outcome == {"returned": True}
    assert srv.is_running is False


def test_serve_forever_ctrl_c_raises_keyboard_interrupt_promptly() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT handler is not Python's default")
    srv = HttpServer(port=0, bind_address=HOST)
    interrupt = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    backup = threading.Timer(6.0, srv.stop)  # so a broken server cannot hang the run
    interrupt.start()
    backup.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            srv.serve_forever()
        elapsed = time.monotonic() - t0
    finally:
        interrupt.cancel()
        backup.cancel()
        srv.stop()
    assert elapsed < 3.0, f"KeyboardInterrupt took {elapsed:.2f}s to reach Python"
    assert srv.is_running is False


# --------------------------------------------------------------------------- #
# Threading modes
# --------------------------------------------------------------------------- #


def test_threaded_handlers_run_off_the_main_thread(serve, probe, fetch) -> None:
    p = probe(lambda req: threading.get_ident())
    srv = serve({"/": p})
    assert fetch(srv, "GET", "/").status == 200
    assert p.result() != threading.get_ident()


def test_poll_on_threaded_server_raises_runtime_error(serve) -> None:
    srv = serve()
    with pytest.raises(RuntimeError):
        srv.poll()


def test_poll_mode_runs_handlers_only_inside_poll(serve, make_router, fetch, wait) -> None:
    ran: list[int] = []

    def get(req: Any, res: Any) -> None:
        ran.append(threading.get_ident())
        res.send(200, "polled", "text/plain")

    srv = serve({"/p": make_router(get=get)}, threaded=False)
    assert srv.poll() == 0
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(r=fetch(srv, "GET", "/p")), daemon=True)
    t.start()
    time.sleep(0.3)
    assert ran == [], "handler ran without poll()"
    total = 0
    deadline = time.monotonic() + 5
    while total < 1 and time.monotonic() < deadline:
        total += srv.poll()
        time.sleep(0.01)
    assert total == 1
    t.join(5)
    assert result["r"].status == 200
    assert result["r"].body == b"polled"
    assert ran == [threading.get_ident()]
    assert srv.poll() == 0


def test_poll_runs_every_waiting_request(serve, make_router, fetch) -> None:
    ran: list[str] = []

    def get(req: Any, res: Any) -> None:
        ran.append(req.parameters["n"])
        res.send(200, req.parameters["n"], "text/plain")

    srv = serve({"/n/:n": make_router(get=get)}, threaded=False)
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=lambda i=i: results.update({str(i): fetch(srv, "GET", f"/n/{i}")}),
            daemon=True,
        )
        for i in range(3)
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let all three requests be read and queued
    assert ran == []
    assert srv.poll() == 3
    for t in threads:
        t.join(5)
    assert sorted(ran) == ["0", "1", "2"]
    assert {k: v.body for k, v in results.items()} == {"0": b"0", "1": b"1", "2": b"2"}
    assert srv.poll() == 0


# --------------------------------------------------------------------------- #
# Changes while running
# --------------------------------------------------------------------------- #


def test_routes_and_identifier_can_change_while_running(serve, make_router, fetch) -> None:
    srv = serve()
    assert fetch(srv, "GET", "/late").status == 404
    srv.register_router("/late", make_router(get=lambda req, res: res.send(200, "late")))
    srv.server_identifier = "Changed/1"
    r = fetch(srv, "GET", "/late")
    assert (r.status, r.body, r.headers["Server"]) == (200, b"late", "Changed/1")
    srv.enable_cors(["https://a.example"])
    r = fetch(srv, "GET", "/late", headers={"Origin": "https://a.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://a.example"


def test_port_cannot_change_while_running(serve) -> None:
    srv = serve()
    with pytest.raises(RuntimeError):
        srv.port = 1234
    with pytest.raises(RuntimeError):
        srv.bind_address = "0.0.0.0"


def test_dropping_a_running_server_releases_its_port(make_router, fetch) -> None:
    srv = HttpServer(port=0, bind_address=HOST)
    srv.register_router("/", make_router(get=lambda req, res: res.send(200, "ok")))
    srv.start()
    port = srv.port
    assert fetch(port, "GET", "/").status == 200
    del srv
    gc.collect()
    deadline = time.monotonic() + 5
    while not _refused(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _refused(port), "a dropped server still accepts connections"
    again = HttpServer(port=port, bind_address=HOST)
    again.start()
    again.stop()
