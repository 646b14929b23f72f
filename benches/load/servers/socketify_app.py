"""The socketify server of the load benchmark.

Usage: python socketify_app.py PORT STATIC_DIR [WORKERS]

With WORKERS above 1, forks WORKERS - 1 processes first and every process (this one too)
builds its own App and listens on the port, as socketify's own ``--workers`` does
(socketify/cli.py); uSockets binds with SO_REUSEPORT, so the kernel spreads connections.
"""

import json
import os
import sys
from pathlib import Path

from socketify import App, AppListenOptions


def main():
    port, static_dir = int(sys.argv[1]), Path(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    for _ in range(1, workers):
        if os.fork() == 0:
            break
    serve(port, static_dir)


def serve(port, static_dir):
    static = (static_dir / "file.bin").read_bytes()
    app = App()

    def plaintext(res, req):
        res.write_header("Content-Type", "text/plain; charset=utf-8")
        res.end(b"Hello, World!")

    def json_route(res, req):
        res.write_header("Content-Type", "application/json")
        res.end(json.dumps({"message": "Hello, World!"}).encode())

    # socketify's own `await res.get_data()` crashes under load (its response object is
    # collected while uWS still holds its handle), so the body is read with on_data and the
    # response kept alive in `reading` until it is complete.
    reading = set()

    def echo(res, req):
        chunks = []
        reading.add(res)

        def on_data(res, chunk, is_end):
            if chunk is not None:
                chunks.append(chunk)
            if is_end:
                reading.discard(res)
                res.write_header("Content-Type", "application/octet-stream")
                res.end(b"".join(chunks))

        res.on_aborted(lambda res: reading.discard(res))
        res.on_data(on_data)

    def headers_query(res, req):
        # socketify's own lookups (uWS reads the header and the query key in place).
        body = "|".join(
            (
                req.get_header("user-agent") or "",
                req.get_header("accept-language") or "",
                req.get_query("id") or "",
                req.get_query("q") or "",
            )
        )
        res.write_header("Content-Type", "text/plain; charset=utf-8")
        res.end(body.encode())

    def static_file(res, req):
        res.write_header("Content-Type", "application/octet-stream")
        res.end(static)

    app.get("/plaintext", plaintext)
    app.get("/json", json_route)
    app.post("/echo", echo)
    app.get("/headers", headers_query)
    app.get("/static/file.bin", static_file)
    app.listen(
        AppListenOptions(port=port, host="127.0.0.1"), lambda config: print("listening", flush=True)
    )
    app.run()


if __name__ == "__main__":
    main()
