"""Streaming throughput: a 100 MiB body generated in 64 KiB writes, godottpd against
granian and uvicorn streaming the same way (issue 10).

    python benches/load/streaming.py [--runs 3] [--servers godottpd,granian,uvicorn]

Each server runs in its own process on 127.0.0.1 and streams ``--size`` MiB as 64 KiB
pieces written one by one (godottpd: ``response.stream()`` and ``write()`` from the
handler; granian: RSGI ``response_stream`` and ``send_bytes``; uvicorn: ASGI
``http.response.body`` with ``more_body``). The client, a raw socket with a 1 MiB
``recv_into`` buffer, reads to the end; the figure is MiB/s of body received, the median of
the runs, with the server's peak RSS (``/proc/PID/status`` VmHWM). granian and uvicorn are
needed in the running interpreter (``pip install granian uvicorn``); a server that is not
installed is skipped. SSE fan-out and idle event streams: sse_fanout.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # benches/load/run.py

HOST = "127.0.0.1"
PIECE = 64 * 1024

GODOTTPD_APP = """
import sys
from godottpd import HttpRouter, HttpServer
PIECE = b"x" * {piece}
COUNT = {count}
class Stream(HttpRouter):
    def handle_get(self, request, response):
        with response.stream(200) as stream:
            for _ in range(COUNT):
                stream.write(PIECE)
server = HttpServer({port}, bind_address="{host}")
server.register_router("/stream", Stream())
server.serve_forever()
"""

GRANIAN_APP = """
PIECE = b"x" * {piece}
COUNT = {count}
async def app(scope, proto):
    transport = proto.response_stream(200, [("content-type", "application/octet-stream")])
    for _ in range(COUNT):
        await transport.send_bytes(PIECE)
"""

ASGI_APP = """
PIECE = b"x" * {piece}
COUNT = {count}
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]}})
    for _ in range(COUNT):
        await send({{"type": "http.response.body", "body": PIECE, "more_body": True}})
    await send({{"type": "http.response.body", "body": b"", "more_body": False}})
"""


def start(name: str, folder: Path, port: int, count: int) -> harness.Server:
    values = {"piece": PIECE, "count": count, "port": port, "host": HOST}
    if name == "godottpd":
        script = folder / "godottpd_stream.py"
        script.write_text(GODOTTPD_APP.format(**values))
        command = [sys.executable, str(script)]
    elif name == "granian":
        (folder / "granian_stream.py").write_text(GRANIAN_APP.format(**values))
        command = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "rsgi",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "granian_stream:app",
        ]
    else:
        (folder / "asgi_stream.py").write_text(ASGI_APP.format(**values))
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "asgi_stream:app",
        ]
    # The apps' folder first, then the caller's PYTHONPATH (where godottpd may be).
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    server = harness.Server(name, [], command, {"PYTHONPATH": path}, port, pin=False, cwd=folder)
    harness.start(server, folder)
    if server.failure:
        harness.stop(server)
        raise RuntimeError(f"{name} did not start: {server.failure}")
    return server


def download(port: int) -> tuple[int, float]:
    sock = socket.create_connection((HOST, port), timeout=60)
    buffer = memoryview(bytearray(1 << 20))
    started = time.perf_counter()
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    received = 0
    while n := sock.recv_into(buffer):
        received += n
    elapsed = time.perf_counter() - started
    sock.close()
    return received, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=100, help="MiB per response")
    parser.add_argument("--servers", default="godottpd,granian,uvicorn")
    arguments = parser.parse_args()
    count = arguments.size * 1024 * 1024 // PIECE
    print(f"{arguments.size} MiB in {PIECE // 1024} KiB writes, median of {arguments.runs}")
    print("| server | MiB/s | peak RSS (MiB) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in arguments.servers.split(","):
            if name != "godottpd" and importlib.util.find_spec(name) is None:
                print(f"| {name} | not installed | |")
                continue
            port = harness.free_port()
            server = start(name, Path(folder), port, count)
            assert server.process is not None
            try:
                rates = []
                for _ in range(arguments.runs):
                    received, elapsed = download(port)
                    assert received >= arguments.size * 1024 * 1024, (name, received)
                    rates.append(received / elapsed / (1024 * 1024))
                # granian serves from a child process: the tree's peak (VmHWM) counts.
                rss = harness.tree_rss_kib(server.process.pid, "VmHWM") / 1024
                print(f"| {name} | {statistics.median(rates):.0f} | {rss:.0f} |")
            finally:
                harness.stop(server)


if __name__ == "__main__":
    main()
