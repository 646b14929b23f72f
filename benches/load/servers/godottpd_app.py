"""The godottpd server of the load benchmark: the five routes, through the public API.

Usage: python godottpd_app.py PORT STATIC_DIR

GODOTTPD_HANDLER_THREADS sets handler_threads (0: the inline mode); GODOTTPD_WORKERS, when
other than 1, serves with ``serve_forever(workers=N)`` (benches/load/workers.py);
GODOTTPD_KEEPALIVE_TIMEOUT, when set, keepalive_timeout in seconds (instructions.py: under
valgrind a connection may wait longer than the default 5 s).
"""

import os
import sys
from pathlib import Path

import godottpd
from godottpd import HttpRouter, HttpServer

PLAINTEXT = "Hello, World!"


class Plaintext(HttpRouter):
    def handle_get(self, request, response):
        response.send(200, PLAINTEXT, "text/plain")


class Json(HttpRouter):
    def handle_get(self, request, response):
        response.json(200, {"message": "Hello, World!"})


class Echo(HttpRouter):
    def handle_post(self, request, response):
        response.send_raw(200, request.body, "application/octet-stream")


class HeadersQuery(HttpRouter):
    """Reads two request headers and two query keys: the lazy objects' real cost."""

    def handle_get(self, request, response):
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
    """Serves one file read once at startup (until the Rust file router lands)."""

    def __init__(self, data):
        self.data = data

    def handle_get(self, request, response):
        response.send_raw(200, self.data, "application/octet-stream")


def main():
    port, static_dir = int(sys.argv[1]), Path(sys.argv[2])
    # handler_threads=0 is the inline mode (see the README); the harness sets it per variant.
    handler_threads = int(os.environ.get("GODOTTPD_HANDLER_THREADS", "8"))
    # 1,024 benchmark connections plus the harness's own: above the default limit of 1,024
    # (nginx gets worker_connections 4096 alike).
    options = {"port": port, "bind_address": "127.0.0.1", "handler_threads": handler_threads}
    if "GODOTTPD_KEEPALIVE_TIMEOUT" in os.environ:
        options["keepalive_timeout"] = float(os.environ["GODOTTPD_KEEPALIVE_TIMEOUT"])
    try:
        server = HttpServer(**options, max_connections=4096)
    except TypeError:  # an older build (--baseline) without the keyword
        server = HttpServer(**options)
    server.register_router("/plaintext", Plaintext())
    server.register_router("/json", Json())
    server.register_router("/echo", Echo())
    server.register_router("/headers", HeadersQuery())
    file_router = None
    if hasattr(godottpd, "HttpFileRouter"):
        try:
            file_router = godottpd.HttpFileRouter(str(static_dir))
        except (TypeError, ValueError) as error:  # an API other than GodotTPD's
            print(f"static: HttpFileRouter refused ({error}); Python handler", flush=True)
    if file_router is not None:
        server.register_router("/static", file_router)
        print("static: HttpFileRouter (Rust)", flush=True)
    else:
        data = (static_dir / "file.bin").read_bytes()
        server.register_router("/static/file.bin", StaticFile(data))
        print("static: Python handler, file read once at startup", flush=True)
    workers = int(os.environ.get("GODOTTPD_WORKERS", "1"))
    if workers != 1:
        server.serve_forever(workers=workers)
    else:
        server.serve_forever()


if __name__ == "__main__":
    main()
