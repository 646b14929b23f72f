"""The asyncio side of ``HttpServer``: ``serve()``, ``async with`` and the server's own loop.

Coroutine handlers run on an event loop the server is attached to (see
``src/python/event_loop.rs``): the caller's with ``await server.serve()`` or ``async with
server``, or a loop of the server's own, on its own thread, after ``start()``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from godottpd._godottpd import HttpServer

# How often a graceful stop on the loop looks whether the last connection has closed.
_STOP_POLL = 0.005


async def serve(server: HttpServer) -> None:
    """Serves on the running loop until the server stops or this is cancelled."""
    stopped = server._attach_loop(asyncio.get_running_loop())
    try:
        await asyncio.shield(stopped)
    except asyncio.CancelledError:
        await stop(server)
        raise


async def stop(server: HttpServer) -> None:
    """``stop()`` without blocking the loop: in-flight handlers (coroutines on this loop
    included) finish within ``shutdown_grace``."""
    if not server._begin_stop():
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + server._shutdown_grace
    while server._open_connections() and loop.time() < deadline:
        await asyncio.sleep(_STOP_POLL)
    server._finish_stop()


_stopping: set[asyncio.Task[None]] = set()


def stop_soon(server: HttpServer) -> None:
    """``stop()`` called on the server's loop: the graceful stop runs as a task."""
    task = asyncio.get_running_loop().create_task(stop(server))
    _stopping.add(task)
    task.add_done_callback(_stopping.discard)


async def aenter(server: HttpServer) -> HttpServer:
    server._attach_loop(asyncio.get_running_loop())
    return server


async def aexit(server: HttpServer) -> bool:
    await stop(server)
    return False


def run_own_loop(bridge: Any) -> None:
    """The server's own loop thread: runs coroutine handlers until the server stops; the
    ones still running then (past ``shutdown_grace``) are cancelled."""
    threading.current_thread().name = "godottpd-asyncio"
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        stopped = bridge.attach(loop)
        loop.run_until_complete(stopped)
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
