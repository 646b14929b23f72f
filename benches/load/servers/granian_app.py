"""The granian (RSGI) server of the load benchmark. Run by granian --interface rsgi.

The static file's directory comes from the BENCH_STATIC_DIR environment variable.
"""

import json
import os
from pathlib import Path
from urllib.parse import parse_qsl

STATIC = (Path(os.environ["BENCH_STATIC_DIR"]) / "file.bin").read_bytes()
TEXT = [("content-type", "text/plain; charset=utf-8")]
JSON = [("content-type", "application/json")]
BINARY = [("content-type", "application/octet-stream")]


async def app(scope, proto):
    path, method = scope.path, scope.method
    if path == "/plaintext" and method == "GET":
        proto.response_bytes(200, TEXT, b"Hello, World!")
    elif path == "/json" and method == "GET":
        proto.response_bytes(200, JSON, json.dumps({"message": "Hello, World!"}).encode())
    elif path == "/echo" and method == "POST":
        body = await proto()
        proto.response_bytes(200, BINARY, body)
    elif path == "/headers" and method == "GET":
        # The RSGI headers mapping and the query string, decoded as a dict (last value wins).
        headers, query = scope.headers, dict(parse_qsl(scope.query_string))
        body = "|".join(
            (
                headers.get("user-agent", ""),
                headers.get("accept-language", ""),
                query.get("id", ""),
                query.get("q", ""),
            )
        )
        proto.response_str(200, TEXT, body)
    elif path == "/static/file.bin" and method == "GET":
        proto.response_bytes(200, BINARY, STATIC)
    else:
        proto.response_bytes(404, TEXT, b"Not found")
