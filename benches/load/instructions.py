"""Instructions per request, counted by callgrind: a figure a busy machine cannot blur.

``perf stat -e instructions`` needs hardware counters, which this kind of VM lacks;
``valgrind --tool=callgrind`` counts instructions in software, the same total for the same
binary and input whatever else the machine does. This runs the load benchmark's godottpd
app (``servers/godottpd_app.py``) under callgrind for each build given, sends it the same
fixed requests (keep-alive, pipelined in batches, from this process), and prints the
instructions per request of the whole server process (Rust core and Python handlers),
and their ratio to the first build:

    python benches/load/instructions.py --build current=python \\
        --build baseline=/path/to/other/python --requests 3000

Counts include the interpreter's start-up and shutdown; ``--requests`` and a warm-up
request amortise them, and a run with few requests is subtracted to remove them exactly.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE / "servers" / "godottpd_app.py"

ROUTES = {
    "plaintext": b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
    "json": b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n",
    "echo": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + b"e" * 1024,
    "static": b"GET /static/file.bin HTTP/1.1\r\nHost: x\r\n\r\n",
}
BATCH = 16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not listen on {port} within {timeout} s")


def drive(port: int, request: bytes, count: int) -> None:
    """Sends `count` requests in pipelined batches and reads every response whole."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        sent = 0
        while sent < count:
            batch = min(BATCH, count - sent)
            conn.sendall(request * batch)
            answered = 0
            data = b""
            while answered < batch:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    raise SystemExit("the server closed the connection")
                data += chunk
                while True:
                    end = data.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    match = re.search(rb"(?i)content-length: *(\d+)", data[:end])
                    length = int(match.group(1)) if match else 0
                    if len(data) < end + 4 + length:
                        break
                    data = data[end + 4 + length :]
                    answered += 1
            sent += batch


def count(build: Path, route: str, requests: int, static_dir: Path, threads: str) -> int:
    """Total instructions of one server run that answers `requests` requests."""
    port = free_port()
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    env = dict(os.environ, PYTHONPATH=str(build), GODOTTPD_HANDLER_THREADS=threads)
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--trace-children=no",
            sys.executable,
            str(APP),
            str(port),
            str(static_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port)
        drive(port, ROUTES[route], requests)
    finally:
        server.send_signal(2)
        server.wait(timeout=120)
    text = out.read_text(errors="replace")
    match = re.search(r"^summary: (\d+)", text, re.M) or re.search(r"^totals: (\d+)", text, re.M)
    if not match:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", required=True, help="NAME=DIR (python/)")
    parser.add_argument("--routes", default="plaintext,json,echo,static")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", default="8", help="handler_threads (0: inline)")
    args = parser.parse_args()
    builds = [(name, Path(path).resolve()) for name, path in (b.split("=", 1) for b in args.build)]
    static_dir = Path(tempfile.mkdtemp())
    (static_dir / "file.bin").write_bytes(os.urandom(100 * 1024))
    few = max(args.requests // 10, 1)
    print(
        f"instructions per request (callgrind), {args.requests} - {few} requests, "
        f"handler_threads={args.threads}"
    )
    print("| route | " + " | ".join(name for name, _ in builds) + " | ratio to the first |")
    print("|---|" + "---:|" * (len(builds) + 1))
    for route in args.routes.split(","):
        per_request = []
        for _, build in builds:
            many = count(build, route, args.requests, static_dir, args.threads)
            base = count(build, route, few, static_dir, args.threads)
            per_request.append((many - base) / (args.requests - few))
        ratios = ", ".join(f"{value / per_request[0]:.3f}x" for value in per_request[1:])
        cells = " | ".join(f"{value:,.0f}" for value in per_request)
        print(f"| {route} | {cells} | {ratios or '-'} |", flush=True)


if __name__ == "__main__":
    main()
