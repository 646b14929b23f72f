"""The standard library's http.server (ThreadingHTTPServer, HTTP/1.1 keep-alive).

Usage: python httpserver_app.py PORT STATIC_DIR
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

STATIC = b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold each response ~40 ms (the standard library's own switch).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass

    def reply(self, body, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/headers?") or self.path == "/headers":
            headers = self.headers
            query = dict(parse_qsl(urlsplit(self.path).query))
            body = "|".join(
                (
                    headers.get("User-Agent", ""),
                    headers.get("Accept-Language", ""),
                    query.get("id", ""),
                    query.get("q", ""),
                )
            )
            self.reply(body.encode(), "text/plain; charset=utf-8")
        elif self.path == "/plaintext":
            self.reply(b"Hello, World!", "text/plain; charset=utf-8")
        elif self.path == "/json":
            self.reply(json.dumps({"message": "Hello, World!"}).encode(), "application/json")
        elif self.path == "/static/file.bin":
            self.reply(STATIC, "application/octet-stream")
        else:
            self.send_error(404)

    def do_POST(self):
        if self.path == "/echo":
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.reply(body, "application/octet-stream")
        else:
            self.send_error(404)


def main():
    global STATIC
    port, static_dir = int(sys.argv[1]), Path(sys.argv[2])
    STATIC = (static_dir / "file.bin").read_bytes()
    ThreadingHTTPServer.daemon_threads = True
    # The default listen backlog of 5 drops SYNs when 1,024 connections open at once.
    ThreadingHTTPServer.request_queue_size = 1024
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
