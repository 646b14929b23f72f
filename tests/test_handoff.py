"""The default handler mode's hand-off, over real sockets.

Handlers run on the thread that drives the connections; one that runs past the hand-off
threshold (a millisecond or two) has the I/O role taken from its thread and given to a
standby handler thread, so the other connections keep being answered, new handlers
included. These tests block handlers far longer than the threshold. Ctrl-C must still reach
Python promptly while handlers block or while the server is busy.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST, _fetch
from godottpd import HttpFileRouter, HttpRouter, HttpServer

pytestmark = pytest.mark.concurrent_handlers


def _blocking_router(entered: threading.Event, release: threading.Event) -> HttpRouter:
    class Blocking(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            entered.set()
            release.wait(20)
            response.send(200, "late", "text/plain")

    return Blocking()


class Quick(HttpRouter):
    def handle_get(self, request: Any, response: Any) -> None:
        response.send(200, f"quick {request.query.get('n', '')}", "text/plain")


@pytest.mark.parametrize("how", ["event-wait", "time-sleep", "computing"])
def test_twenty_requests_answered_while_one_handler_blocks_past_the_handoff(
    serve: Any, how: str
) -> None:
    entered, release = threading.Event(), threading.Event()
    if how == "computing":
        # Never asleep: handed off after the longer threshold for a running handler.

        class Computing(HttpRouter):
            def handle_get(self, request: Any, response: Any) -> None:
                entered.set()
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    pass
                response.send(200, "late", "text/plain")

        blocker: HttpRouter = Computing()
    elif how == "time-sleep":

        class Sleeping(HttpRouter):
            def handle_get(self, request: Any, response: Any) -> None:
                entered.set()
                time.sleep(1.5)
                response.send(200, "late", "text/plain")

        blocker = Sleeping()
    else:
        blocker = _blocking_router(entered, release)
    srv = serve({"/block": blocker, "/quick": Quick()})
    with ThreadPoolExecutor(21) as pool:
        blocked = pool.submit(_fetch, srv, "GET", "/block", timeout=30)
        assert entered.wait(5)
        time.sleep(0.1)  # far past the hand-off thresholds
        t0 = time.monotonic()
        answers = list(pool.map(lambda n: _fetch(srv, "GET", f"/quick?n={n}"), range(20)))
        elapsed = time.monotonic() - t0
        assert not blocked.done(), "the blocking handler returned early: nothing was tested"
        assert [a.body for a in answers] == [f"quick {n}".encode() for n in range(20)]
        assert elapsed < 1.2, f"20 quick requests took {elapsed:.2f}s beside a blocked handler"
        release.set()
        assert blocked.result(30).body == b"late"


def test_one_connection_keeps_being_answered_while_handlers_block_one_after_another(
    serve: Any, raw: Any, build: Any
) -> None:
    """A keep-alive client, answered through several hand-offs in a row."""
    releases = [threading.Event() for _ in range(3)]
    entered = [threading.Event() for _ in range(3)]

    class Blocking(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            index = int(request.query["i"])
            entered[index].set()
            releases[index].wait(20)
            response.send(200, f"late {index}", "text/plain")

    srv = serve({"/block": Blocking(), "/quick": Quick()})
    blockers = [raw(srv) for _ in range(3)]
    client = raw(srv)
    for index, blocker in enumerate(blockers):
        blocker.send(build("GET", f"/block?i={index}"))
        assert entered[index].wait(5)
        for n in range(5):
            client.send(build("GET", f"/quick?n={n}"))
            assert client.read_response(timeout=2).body == f"quick {n}".encode()
    for index, blocker in enumerate(blockers):
        releases[index].set()
        assert blocker.read_response(timeout=5).body == f"late {index}".encode()


def test_an_answer_made_just_before_a_long_handler_is_not_held_back_by_it(
    serve: Any, raw: Any, build: Any
) -> None:
    """Answers made on the driver go out with its next round of I/O (`reply_batch`); when
    the next job of the same round blocks, that round never comes on this thread, and the
    thread that drives next must send them."""
    entered, release = threading.Event(), threading.Event()
    srv = serve({"/block": _blocking_router(entered, release), "/quick": Quick()})
    client = raw(srv)
    # Pipelined in one write: both are routed before any answer is awaited, so both jobs
    # are ready in the same round, the quick one first.
    client.send(build("GET", "/quick?n=1") + build("GET", "/block"))
    try:
        assert client.read_response(timeout=10).body == b"quick 1"
        assert entered.wait(5)
    finally:
        release.set()
    assert client.read_response(timeout=10).body == b"late"


def test_files_and_new_connections_answered_while_every_handler_thread_blocks(
    serve: Any, tmp_path: Path
) -> None:
    """With every handler thread blocked, the watchdog drives the connections itself."""
    (tmp_path / "a.txt").write_text("file body")
    release = threading.Event()
    entered = threading.Semaphore(0)

    class Blocking(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            entered.release()
            release.wait(20)
            response.send(200, "late", "text/plain")

    srv = serve(
        {"/block": Blocking(), "/files": HttpFileRouter(str(tmp_path)), "/quick": Quick()},
        handler_threads=2,
    )
    with ThreadPoolExecutor(4) as pool:
        blocked = [pool.submit(_fetch, srv, "GET", "/block", timeout=30) for _ in range(2)]
        assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
        time.sleep(0.05)
        for _ in range(5):
            assert _fetch(srv, "GET", "/files/a.txt", timeout=3).body == b"file body"
        assert _fetch(srv, "GET", "/missing", timeout=3).status == 404
        # A handler route waits for a thread, then runs.
        quick = pool.submit(_fetch, srv, "GET", "/quick?n=1", timeout=10)
        time.sleep(0.1)
        release.set()
        assert quick.result(10).body == b"quick 1"
        assert [b.result(10).body for b in blocked] == [b"late", b"late"]


def _serve_forever_until_ctrl_c(srv: HttpServer) -> float:
    interrupt = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    backup = threading.Timer(8.0, srv.stop)  # so a broken server cannot hang the run
    interrupt.start()
    backup.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            srv.serve_forever()
        return time.monotonic() - t0
    finally:
        interrupt.cancel()
        backup.cancel()
        srv.stop()


def _needs_main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT handler is not Python's default")


def test_ctrl_c_reaches_python_promptly_while_a_handler_blocks() -> None:
    _needs_main_thread()
    entered, release = threading.Event(), threading.Event()
    srv = HttpServer(port=0, bind_address=HOST, shutdown_grace=0.5)
    srv.register_router("/block", _blocking_router(entered, release))
    srv.register_router("/quick", Quick())

    def blocked_client() -> None:
        if _ready(srv):
            try:
                _fetch(srv, "GET", "/block", timeout=10)
            except OSError:  # stop() closes the stuck handler's connection
                pass

    client = threading.Thread(target=blocked_client)
    try:
        srv.start()
        client.start()
        elapsed = _serve_forever_until_ctrl_c(srv)
    finally:
        release.set()
        client.join(10)
    assert entered.is_set(), "the blocking handler never ran"
    # 0.3 s until the signal, then at most the grace period for the stuck handler.
    assert elapsed < 2.5, f"KeyboardInterrupt took {elapsed:.2f}s with a handler blocked"
    assert srv.is_running is False


def _ready(srv: HttpServer) -> bool:
    deadline = time.monotonic() + 5
    while not srv.is_running and time.monotonic() < deadline:
        time.sleep(0.01)
    return srv.is_running


def test_ctrl_c_reaches_python_promptly_under_load() -> None:
    _needs_main_thread()
    srv = HttpServer(port=0, bind_address=HOST, shutdown_grace=0.5)
    srv.register_router("/quick", Quick())
    stop = threading.Event()
    answered = [0]

    def hammer() -> None:
        _ready(srv)
        while not stop.is_set():
            try:
                _fetch(srv, "GET", "/quick", timeout=2)
                answered[0] += 1
            except OSError:
                return

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        srv.start()
        for client in clients:
            client.start()
        elapsed = _serve_forever_until_ctrl_c(srv)
    finally:
        stop.set()
        for client in clients:
            client.join(10)
    assert answered[0] > 0, "no request was answered"
    assert elapsed < 2.0, f"KeyboardInterrupt took {elapsed:.2f}s under load"
