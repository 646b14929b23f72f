"""Instructions per request (valgrind callgrind), godottpd's handler modes side by side.

A measure the machine's load cannot move: the server runs under callgrind with collection
off; after a warm-up, collection is switched on (``callgrind_control -i on``) for exactly
COUNT requests from a fixed-count client, then off; the instructions executed by every
thread of the server (user space only: the kernel's share of a thread hand-off, the
context switches, is not counted, so this favours the modes that cross threads) are divided
by COUNT. Clients: ``c1`` (one keep-alive connection, one request at a time) and
``pipelined`` (one connection, 16 requests per write).

    python benches/load/callgrind_per_request.py --count 2000
    python benches/load/callgrind_per_request.py --variants default=8,inline=0 --shapes c1

Variants as in cpu_per_request.py (NAME=HANDLER_THREADS[:VAR=VALUE...]).
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
REPO = HERE.parent.parent
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(port: int, timeout: float = 120.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), 5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(60)
            return sock
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_requests(sock: socket.socket, count: int, depth: int) -> None:
    """COUNT requests, DEPTH per write; each answer is read in full (Content-Length)."""
    buffer = b""
    done = 0
    while done < count:
        batch = min(depth, count - done)
        sock.sendall(REQUEST * batch)
        for _ in range(batch):
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed")
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(rest) < length:
                rest += sock.recv(65536)
            buffer = rest[length:]
        done += batch


def totals(path: Path) -> int:
    instructions = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            instructions = max(instructions, int(line.split()[1]))
    return instructions


def measure(variant: tuple[str, str, dict], depth: int, count: int, tmp: Path) -> float:
    name, threads, extra = variant
    port = free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO / "python"),
        GODOTTPD_HANDLER_THREADS=threads,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
    )
    env.update(extra)
    out = tmp / f"callgrind.{name}.{depth}.out"
    static = tmp / "static"
    static.mkdir(exist_ok=True)
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(HERE / "servers" / "godottpd_app.py"),
            str(port),
            str(static),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sock = connect(port)
        run_requests(sock, 300, depth)  # warm-up
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True)
        run_requests(sock, count, depth)
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True)
        sock.close()
    finally:
        server.terminate()
        server.wait(120)
    return totals(out) / count


def parse_variants(text: str) -> list[tuple[str, str, dict]]:
    variants = []
    for item in text.split(","):
        name, _, rest = item.partition("=")
        threads, *extras = rest.split(":")
        env = dict(extra.split("=", 1) for extra in extras)
        variants.append((name, threads, env))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default=8,inline=0")
    parser.add_argument("--shapes", default="c1,pipelined")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    variants = parse_variants(args.variants)
    depths = {"c1": 1, "pipelined": 16}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            for variant in variants:
                per_request = measure(variant, depths[shape], args.count, Path(tmp))
                results[(shape, variant[0])] = per_request
                print(f"# {shape} {variant[0]}: {per_request:,.0f} instructions/req", flush=True)
    reference = variants[-1][0]
    print(f"\n| shape | variant | instructions/req | vs {reference} |")
    print("|---|---|---:|---:|")
    for shape in args.shapes.split(","):
        for variant in variants:
            value = results[(shape, variant[0])]
            ratio = results[(shape, reference)] / value
            print(f"| {shape} | {variant[0]} | {value:,.0f} | {ratio:.3f}x |")


if __name__ == "__main__":
    main()
