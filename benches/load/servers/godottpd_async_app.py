"""The godottpd server of the asyncio load benchmark: the routes as ``async def`` handlers,
served on the caller's loop (uvloop when installed, as uvicorn's) by ``await
server.serve()``.

Usage: python godottpd_async_app.py PORT STATIC_DIR

GODOTTPD_HANDLER_THREADS and GODOTTPD_KEEPALIVE_TIMEOUT as in godottpd_app.py.
"""

import asyncio
import os
import sys
from pathlib import Path

from godottpd import HttpRouter, HttpServer

PLAINTEXT = "Hello, World!"


class Plaintext(HttpRouter):
    async def handle_get(self, request, response):
        response.send(200, PLAINTEXT, "text/plain")


class Json(HttpRouter):
    async def handle_get(self, request, response):
        response.json(200, {"message": "Hello, World!"})


class Echo(HttpRouter):
    async def handle_post(self, request, response):
        response.send_raw(200, request.body, "application/octet-stream")


class HeadersQuery(HttpRouter):
    async def handle_get(self, request, response):
        headers, query = request.headers, request.query
        body = "|".join(
            (
                headers.get("user-agent", ""),
                headers.get("accept-language", ""),
                query.get("id", ""),
                query.get("q", ""),
            )
        )
        response.send(200, body, "text/plain")


class StaticFile(HttpRouter):
    """The file read once at startup, as the ASGI apps serve it."""

    def __init__(self, data):
        self.data = data

    async def handle_get(self, request, response):
        response.send_raw(200, self.data, "application/octet-stream")


async def serve(port, static_dir):
    handler_threads = int(os.environ.get("GODOTTPD_HANDLER_THREADS", "8"))
    options = {"handler_threads": handler_threads, "max_connections": 4096}
    if "GODOTTPD_KEEPALIVE_TIMEOUT" in os.environ:  # as in godottpd_app.py
        options["keepalive_timeout"] = float(os.environ["GODOTTPD_KEEPALIVE_TIMEOUT"])
    server = HttpServer(port, "127.0.0.1", **options)
    server.register_router("/plaintext", Plaintext())
    server.register_router("/json", Json())
    server.register_router("/echo", Echo())
    server.register_router("/headers", HeadersQuery())
    server.register_router("/static/file.bin", StaticFile((static_dir / "file.bin").read_bytes()))
    await server.serve()


def main():
    port, static_dir = int(sys.argv[1]), Path(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        print("loop: asyncio", flush=True)
        asyncio.run(serve(port, static_dir))
    else:
        print("loop: uvloop", flush=True)
        uvloop.run(serve(port, static_dir))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
