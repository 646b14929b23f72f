"""``async def`` handlers: on the caller's loop (``await server.serve()``, ``async with``)
or on the server's own loop (``start()``), with async clients (httpx, aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from godottpd import BadRequest, HttpRouter, HttpServer

HOST = "127.0.0.1"


def _server(**kwargs: Any) -> HttpServer:
    kwargs.setdefault("shutdown_grace", 2.0)
    inline = os.environ.get("GODOTTPD_TEST_HANDLER_THREADS")
    if inline is not None:
        kwargs.setdefault("handler_threads", int(inline))
    return HttpServer(0, HOST, **kwargs)


def _url(server: HttpServer, path: str) -> str:
    return f"http://{HOST}:{server.port}{path}"


def run(main: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Runs ``main()`` on a fresh loop, bounded."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


async def _started(server: HttpServer) -> asyncio.Task[None]:
    """``server.serve()`` as a task, once it listens."""
    task = asyncio.create_task(server.serve())
    while not server.is_running:
        await asyncio.sleep(0)
    return task


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class Sleepy(HttpRouter):
    """GET awaits ``asyncio.sleep(delay)``; counts handlers in flight."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most = 0
        self.threads: set[str] = set()

    async def handle_get(self, request: Any, response: Any) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.threads.add(threading.current_thread().name)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        response.send(200, "slept")


# --------------------------------------------------------------------------- #
# Concurrency on one loop
# --------------------------------------------------------------------------- #


def test_thousand_concurrent_sleeping_handlers_on_one_loop() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    router = Sleepy(0.5)
    server = _server(max_connections=1100)
    server.register_router("/sleep", router)

    async def main() -> tuple[list[int], float, threading.Thread]:
        task = await _started(server)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> int:
                async with session.get(_url(server, "/sleep")) as reply:
                    assert await reply.text() == "slept"
                    return int(reply.status)

            began = time.monotonic()
            statuses = await asyncio.gather(*(one() for _ in range(1000)))
            elapsed = time.monotonic() - began
        await _cancel(task)
        return statuses, elapsed, threading.current_thread()

    statuses, elapsed, loop_thread = run(main, timeout=60)
    assert statuses == [200] * 1000
    # All 1,000 were asleep at once: one loop, no thread per request.
    assert router.most == 1000
    assert router.threads == {loop_thread.name}
    assert elapsed < 10, f"1000 requests sleeping 0.5 s took {elapsed:.1f} s"


def test_requests_reach_the_loop_in_batches() -> None:
    router = Sleepy(0.1)
    server = _server()
    server.register_router("/sleep", router)

    async def main() -> tuple[int, int]:
        task = await _started(server)
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(limits=limits) as client:
            replies = await asyncio.gather(
                *(client.get(_url(server, "/sleep")) for _ in range(100))
            )
        assert [reply.status_code for reply in replies] == [200] * 100
        stats = server._event_loop_stats()
        await _cancel(task)
        return stats

    wakeups, jobs = run(main)
    assert jobs == 100
    assert 1 <= wakeups <= jobs


def test_serve_shares_the_loop_with_other_tasks() -> None:
    ticks: list[float] = []
    seen: dict[str, int] = {}

    class Counter(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            before = len(ticks)
            await asyncio.sleep(0.3)
            seen["ticks during the handler"] = len(ticks) - before
            response.send(200, str(len(ticks)))

    server = _server()
    server.register_router("/count", Counter())

    async def main() -> None:
        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        background = asyncio.create_task(ticker())
        task = await _started(server)
        async with httpx.AsyncClient() as client:
            reply = await client.get(_url(server, "/count"))
        assert reply.status_code == 200
        await _cancel(task)
        count = len(ticks)
        await asyncio.sleep(0.05)
        assert len(ticks) > count, "the application's task stopped with the server"
        background.cancel()

    run(main)
    assert seen["ticks during the handler"] >= 3


def test_handler_awaits_another_http_call() -> None:
    class Backend(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            await asyncio.sleep(0.01)
            response.json(200, {"from": "backend", "q": request.query.get("q")})

    class Front(HttpRouter):
        def __init__(self) -> None:
            self.client: httpx.AsyncClient | None = None

        async def handle_get(self, request: Any, response: Any) -> None:
            assert self.client is not None
            reply = await self.client.get(_url(server, "/backend"), params={"q": "42"})
            response.json(200, {"proxied": reply.json()})

    front = Front()
    server = _server()
    server.register_router("/backend", Backend())
    server.register_router("/front", front)

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            # The handler shares the application's client: same loop.
            front.client = client
            async with server:
                replies = await asyncio.gather(
                    *(client.get(_url(server, "/front")) for _ in range(20))
                )
        for reply in replies:
            assert reply.status_code == 200
            assert reply.json() == {"proxied": {"from": "backend", "q": "42"}}

    run(main)


def test_sync_and_async_handlers_in_one_router() -> None:
    threads: dict[str, str] = {}

    class Mixed(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            threads["get"] = threading.current_thread().name
            await asyncio.sleep(0)
            response.send(200, "async get")

        def handle_post(self, request: Any, response: Any) -> None:
            threads["post"] = threading.current_thread().name
            response.send(200, "sync post " + request.text)

    class Plain(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            response.send(200, "plain")

    server = _server()
    server.register_router("/mixed", Mixed())
    server.register_router("/plain", Plain())

    async def main() -> str:
        async with server, httpx.AsyncClient() as client:
            get = await client.get(_url(server, "/mixed"))
            post = await client.post(_url(server, "/mixed"), content=b"body")
            plain = await client.get(_url(server, "/plain"))
            put = await client.put(_url(server, "/mixed"))
        assert (get.status_code, get.text) == (200, "async get")
        assert (post.status_code, post.text) == (200, "sync post body")
        assert plain.text == "plain"
        assert put.status_code == 405
        assert put.headers["allow"] == "GET, HEAD, POST"
        return threading.current_thread().name

    loop_thread = run(main)
    assert threads["get"] == loop_thread
    assert threads["post"] != loop_thread


# --------------------------------------------------------------------------- #
# The server's own loop (start(), serve_forever())
# --------------------------------------------------------------------------- #


def test_start_runs_coroutine_handlers_on_a_loop_of_its_own(serve: Any, fetch: Any) -> None:
    router = Sleepy(0.01)
    server = serve({"/sleep": router})
    replies = [fetch(server, "GET", "/sleep") for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert router.threads == {"godottpd-asyncio"}


def test_async_router_registered_after_start(serve: Any, fetch: Any) -> None:
    server = serve({})
    server.register_router("/late", Sleepy(0))
    assert fetch(server, "GET", "/late").status == 200


def test_concurrent_requests_on_the_own_loop(serve: Any) -> None:
    router = Sleepy(0.2)
    server = serve({"/sleep": router})

    async def main() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
            replies = await asyncio.gather(*(client.get(_url(server, "/sleep")) for _ in range(50)))
        return [reply.status_code for reply in replies]

    assert run(main) == [200] * 50
    assert router.most == 50


def test_serve_after_start_is_refused(serve: Any) -> None:
    server = serve({"/sleep": Sleepy(0)})

    async def main() -> None:
        with pytest.raises(RuntimeError, match="start"):
            await server.serve()

    run(main)


# --------------------------------------------------------------------------- #
# Errors, dropped and deferred responses
# --------------------------------------------------------------------------- #


def test_exceptions_bad_request_and_unsent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="godottpd")

    class Errors(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            await asyncio.sleep(0)
            raise ZeroDivisionError("async-kaboom")

        async def handle_post(self, request: Any, response: Any) -> None:
            await asyncio.sleep(0)
            raise BadRequest("no such field")

        async def handle_put(self, request: Any, response: Any) -> None:
            await asyncio.sleep(0)

        async def handle_delete(self, request: Any, response: Any) -> None:
            response.send(204)
            raise RuntimeError("after sending")

    server = _server()
    server.register_router("/e", Errors())

    async def main() -> None:
        async with server, httpx.AsyncClient() as client:
            failed = await client.get(_url(server, "/e"))
            bad = await client.post(_url(server, "/e"))
            unsent = await client.put(_url(server, "/e"))
            sent = await client.delete(_url(server, "/e"))
        assert failed.status_code == 500
        assert "async-kaboom" not in failed.text
        assert (bad.status_code, bad.text) == (400, "no such field")
        assert unsent.status_code == 500
        assert sent.status_code == 204

    run(main)
    assert "async-kaboom" in caplog.text
    assert "Traceback" in caplog.text
    assert "handle_get raised while handling GET /e" in caplog.text
    assert "no such field" not in caplog.text
    assert "dropped without being sent" in caplog.text
    assert "after sending" in caplog.text


def test_errors_of_handlers_that_never_await(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that ends in its first step (the benchmark's case, which may never be
    scheduled as a task at all) answers 500 as one that awaited first."""
    caplog.set_level(logging.DEBUG, logger="godottpd")

    class Errors(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            raise ZeroDivisionError("eager-kaboom")

        async def handle_put(self, request: Any, response: Any) -> None:
            pass

    server = _server()
    server.register_router("/e", Errors())

    async def main() -> None:
        async with server, httpx.AsyncClient() as client:
            failed = await client.get(_url(server, "/e"))
            unsent = await client.put(_url(server, "/e"))
        assert failed.status_code == 500
        assert unsent.status_code == 500

    run(main)
    assert "eager-kaboom" in caplog.text
    assert "handle_get raised while handling GET /e" in caplog.text
    assert "dropped without being sent" in caplog.text


CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="unset")


def test_each_handler_runs_in_a_task_of_its_own() -> None:
    """What httpx, anyio, sniffio and ``asyncio.timeout()`` rely on: inside a handler,
    ``asyncio.current_task()`` is a real task, the handler's own (not one shared by all
    handlers), the same before and after an await; a context variable the handler sets is
    still set after its first await and never seen by another handler."""
    seen: dict[str, Any] = {}
    release = asyncio.Event()

    class Tasks(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            name = request.query["name"]
            before = asyncio.current_task()
            previous = CURRENT.get()
            CURRENT.set(name)
            seen[name] = before
            if len(seen) == 2:
                release.set()
            await release.wait()
            after = asyncio.current_task()
            response.json(
                200,
                {
                    "task": isinstance(before, asyncio.Task),
                    "same": before is after,
                    "previous": previous,
                    "var": CURRENT.get(),
                },
            )

    server = _server()
    server.register_router("/t", Tasks())

    async def main() -> list[Any]:
        async with server, httpx.AsyncClient() as client:
            replies = await asyncio.gather(
                client.get(_url(server, "/t?name=a")), client.get(_url(server, "/t?name=b"))
            )
        return [reply.json() for reply in replies]

    first, second = run(main)
    assert first == {"task": True, "same": True, "previous": "unset", "var": "a"}
    assert second == {"task": True, "same": True, "previous": "unset", "var": "b"}
    assert seen["a"] is not seen["b"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is 3.11's")
def test_asyncio_timeout_in_a_handler_fires() -> None:
    class Timeout(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(30)
            except TimeoutError:
                response.send(200, "timed out")

    server = _server()
    server.register_router("/timeout", Timeout())

    async def main() -> httpx.Response:
        async with server, httpx.AsyncClient() as client:
            return await client.get(_url(server, "/timeout"), timeout=10)

    reply = run(main)
    assert (reply.status_code, reply.text) == (200, "timed out")


def test_handlers_still_running_at_stop_are_cancelled() -> None:
    cancelled = threading.Event()
    started = threading.Event()

    class Forever(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    server = _server(shutdown_grace=0.2)
    server.register_router("/forever", Forever())
    server.start()
    try:

        def fetch() -> None:
            # Answered 500 or cut off at the stop: either way the handler was cancelled.
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(_url(server, "/forever"), timeout=10)

        client = threading.Thread(target=fetch, daemon=True)
        client.start()
        assert started.wait(10)
    finally:
        server.stop()
    assert cancelled.wait(10)


def test_response_sent_later_from_another_task_and_thread() -> None:
    class Deferred(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            async def later() -> None:
                await asyncio.sleep(0.05)
                response.send(200, "from a task")

            pending.add(asyncio.create_task(later()))

        async def handle_post(self, request: Any, response: Any) -> None:
            def later() -> None:
                time.sleep(0.05)
                response.json(201, {"from": "a thread"})

            threading.Thread(target=later).start()

    pending: set[asyncio.Task[None]] = set()
    server = _server()
    server.register_router("/d", Deferred())

    async def main() -> None:
        async with server, httpx.AsyncClient() as client:
            from_task = await client.get(_url(server, "/d"))
            from_thread = await client.post(_url(server, "/d"))
        assert (from_task.status_code, from_task.text) == (200, "from a task")
        assert (from_thread.status_code, from_thread.json()) == (201, {"from": "a thread"})

    run(main)


# --------------------------------------------------------------------------- #
# The client leaving; streaming
# --------------------------------------------------------------------------- #


def test_wait_closed_and_is_open() -> None:
    seen: dict[str, Any] = {}
    entered = asyncio.Event()

    class Watch(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            seen["open before"] = response.client.is_open
            entered.set()
            await asyncio.wait_for(response.client.wait_closed(), 5)
            seen["open after"] = response.client.is_open
            # Already closed: returns at once.
            await response.client.wait_closed()
            seen["done"] = True

    server = _server()
    server.register_router("/w", Watch())

    async def main() -> None:
        async with server:
            _reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(b"GET /w HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(entered.wait(), 5)
            writer.close()
            await writer.wait_closed()
            while "done" not in seen:
                await asyncio.sleep(0.01)

    run(main)
    assert seen == {"open before": True, "open after": False, "done": True}


def test_wait_closed_outside_the_loop_is_an_error(serve: Any, fetch: Any) -> None:
    errors: list[BaseException] = []

    class Sync(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            try:
                response.client.wait_closed()
            except RuntimeError as error:
                errors.append(error)
            response.send(200)

    server = serve({"/s": Sync()})
    assert fetch(server, "GET", "/s").status == 200
    assert errors and "event loop" in str(errors[0])


def test_stream_write_never_blocks_the_loop_and_drain_waits() -> None:
    piece = b"x" * 16384
    pieces = 200
    record: dict[str, Any] = {}
    ticks: list[int] = []

    class Stream(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            stream = response.stream(200, "application/octet-stream")
            longest = 0.0
            for _ in range(pieces):
                began = time.monotonic()
                stream.write(piece)
                longest = max(longest, time.monotonic() - began)
                await stream.drain()
            stream.close()
            record["longest write"] = longest

    server = _server(stream_buffer=32768)
    server.register_router("/s", Stream())

    async def main() -> int:
        async def ticker() -> None:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.005)

        background = asyncio.create_task(ticker())
        async with server:
            reader, writer = await asyncio.open_connection(HOST, server.port, limit=4096)
            writer.write(b"GET /s HTTP/1.0\r\n\r\n")
            await writer.drain()
            received = 0
            # A slow reader: the handler must wait in drain(), not in write().
            while chunk := await reader.read(4096):
                received += len(chunk)
                await asyncio.sleep(0.0005)
            writer.close()
        background.cancel()
        return received

    received = run(main)
    assert received > pieces * len(piece)
    assert record["longest write"] < 0.05
    assert len(ticks) > 10


def test_drain_raises_once_the_client_is_gone() -> None:
    outcome: dict[str, Any] = {}

    class Stream(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            stream = response.stream(200)
            try:
                for _ in range(10000):
                    stream.write(b"y" * 65536)
                    await stream.drain()
            except ConnectionError as error:
                outcome["error"] = error

    server = _server(stream_buffer=65536)
    server.register_router("/s", Stream())

    async def main() -> None:
        async with server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.read(1000)
            writer.transport.abort()
            while "error" not in outcome:
                await asyncio.sleep(0.01)

    run(main)
    assert isinstance(outcome["error"], ConnectionError)


def test_event_stream_from_a_coroutine() -> None:
    class Events(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            events = response.event_stream(heartbeat=None)
            for number in range(5):
                events.send({"n": number}, event="tick", id=str(number))
                await events.drain()
                await asyncio.sleep(0.01)
            events.close()

    server = _server()
    server.register_router("/events", Events())

    async def main() -> str:
        async with server, httpx.AsyncClient() as client:
            async with client.stream("GET", _url(server, "/events")) as reply:
                assert reply.headers["content-type"].startswith("text/event-stream")
                return "".join([text async for text in reply.aiter_text()])

    body = run(main)
    assert body.count("event: tick\n") == 5
    assert 'data: {"n":4}' in body.replace(" ", "").replace("data:", "data: ")


# --------------------------------------------------------------------------- #
# Lifecycle
# --------------------------------------------------------------------------- #


def test_cancelling_serve_finishes_in_flight_requests() -> None:
    router = Sleepy(0.5)
    server = _server()
    server.register_router("/sleep", router)

    async def main() -> None:
        task = await _started(server)
        async with httpx.AsyncClient() as client:
            in_flight = asyncio.create_task(client.get(_url(server, "/sleep")))
            while router.in_flight == 0:
                await asyncio.sleep(0.005)
            task.cancel()
            reply = await in_flight
            assert (reply.status_code, reply.text) == (200, "slept")
            assert reply.headers["connection"] == "close"
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not server.is_running
            with pytest.raises(httpx.ConnectError):
                await client.get(_url(server, "/sleep"))

    run(main)


def test_stop_from_a_coroutine_handler_ends_serve() -> None:
    class Stopper(HttpRouter):
        async def handle_get(self, request: Any, response: Any) -> None:
            response.send(200, "bye")
            server.stop()

    server = _server()
    server.register_router("/stop", Stopper())

    async def main() -> None:
        task = await _started(server)
        async with httpx.AsyncClient() as client:
            reply = await client.get(_url(server, "/stop"))
        assert reply.text == "bye"
        await asyncio.wait_for(task, 5)
        assert not server.is_running

    run(main)


def test_stop_from_another_thread_ends_serve() -> None:
    server = _server()
    server.register_router("/sleep", Sleepy(0))

    async def main() -> None:
        task = await _started(server)
        await asyncio.get_running_loop().run_in_executor(None, server.stop)
        await asyncio.wait_for(task, 5)

    run(main)
    assert not server.is_running


def test_serve_again_after_stopping() -> None:
    server = _server()
    server.register_router("/sleep", Sleepy(0))

    async def main() -> None:
        for _ in range(2):
            async with server, httpx.AsyncClient() as client:
                assert (await client.get(_url(server, "/sleep"))).status_code == 200
            assert not server.is_running

    run(main)


def test_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    server = _server()
    server.register_router("/sleep", Sleepy(0.05))

    async def main() -> list[int]:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        task = await _started(server)
        async with httpx.AsyncClient() as client:
            replies = await asyncio.gather(*(client.get(_url(server, "/sleep")) for _ in range(50)))
        await _cancel(task)
        return [reply.status_code for reply in replies]

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(asyncio.wait_for(main(), 30)) == [200] * 50
    finally:
        loop.close()


CTRL_C_APP = textwrap.dedent(
    """
    import asyncio, sys
    from godottpd import HttpRouter, HttpServer

    class Slow(HttpRouter):
        async def handle_get(self, request, response):
            print("in handler", flush=True)
            await asyncio.sleep(0.5)
            response.send(200, "finished")

    async def main():
        server = HttpServer(0, "127.0.0.1", shutdown_grace=5.0)
        server.register_router("/slow", Slow())
        async def announce():
            while not server.is_running:
                await asyncio.sleep(0)
            print(server.port, flush=True)
        asyncio.get_running_loop().create_task(announce())
        await server.serve()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(0)
    """
)


def test_ctrl_c_under_asyncio_run_stops_gracefully() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CTRL_C_APP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            result: dict[str, Any] = {}

            def get() -> None:
                try:
                    result["reply"] = httpx.get(f"http://{HOST}:{port}/slow", timeout=10)
                except httpx.HTTPError as error:
                    result["error"] = error

            client = threading.Thread(target=get)
            client.start()
            assert process.stdout.readline().strip() == "in handler"
            # The request is in flight, its handler asleep: Ctrl-C.
            process.send_signal(signal.SIGINT)
            client.join(10)
            assert process.wait(10) == 0
            assert process.stdout.read().strip() == "interrupted"
            assert "error" not in result, result
            assert (result["reply"].status_code, result["reply"].text) == (200, "finished")
        finally:
            if process.poll() is None:
                process.kill()
