"""The uvicorn (raw ASGI, httptools + uvloop) server of the load benchmark.

The static file's directory comes from the BENCH_STATIC_DIR environment variable.
"""

import json
import os
from pathlib import Path
from urllib.parse import parse_qsl

STATIC = (Path(os.environ["BENCH_STATIC_DIR"]) / "file.bin").read_bytes()
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON = [(b"content-type", b"application/json")]
BINARY = [(b"content-type", b"application/octet-stream")]


async def respond(send, status, headers, body):
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive):
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/plaintext" and method == "GET":
        await respond(send, 200, TEXT, b"Hello, World!")
    elif path == "/json" and method == "GET":
        await respond(send, 200, JSON, json.dumps({"message": "Hello, World!"}).encode())
    elif path == "/echo" and method == "POST":
        await respond(send, 200, BINARY, await read_body(receive))
    elif path == "/headers" and method == "GET":
        # ASGI gives the headers as a list of byte pairs: a dict of them, as a framework's
        # Headers object would build, and the query string decoded (last value wins).
        headers = dict(scope["headers"])
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        body = "|".join(
            (
                headers.get(b"user-agent", b"").decode("latin-1"),
                headers.get(b"accept-language", b"").decode("latin-1"),
                query.get("id", ""),
                query.get("q", ""),
            )
        )
        await respond(send, 200, TEXT, body.encode())
    elif path == "/static/file.bin" and method == "GET":
        await respond(send, 200, BINARY, STATIC)
    else:
        await respond(send, 404, TEXT, b"Not found")
