"""Instructions per request (valgrind callgrind) of coroutine handlers, beside sync ones.

The measure of ``instructions.py`` (the server under callgrind with collection
off; after a warm-up it is switched on for exactly COUNT requests, then off; every thread,
user space only) for the asyncio benchmark's server, ``servers/godottpd_async_app.py``
(``async def`` handlers under ``await server.serve()``, uvloop when the interpreter has it),
and for the sync one, ``servers/godottpd_app.py``, on any interpreter (``--python``), so
that the coroutine path's cost shows per Python version. Clients: ``c1`` (one keep-alive
connection, one request at a time), ``pipelined`` (16 requests per write) and ``c64``
(64 connections, one request in flight on each, as wrk's 64 connections: the loop gets
them in batches).

    python benches/load/async_instructions.py --count 2000
    python benches/load/async_instructions.py --python /root/.pyenv/versions/3.12.1/bin/python3 \\
        --apps async --shapes c64 --keep /tmp/cg

``--keep DIR`` keeps the callgrind files for ``callgrind_annotate``; ``--package DIR`` times
another build (a copy of ``python/`` holding it), as run.py's ``--baseline``. The interpreter needs
uvloop for the figures of the benchmark (else plain asyncio); godottpd comes from
``python/`` (build first, as run.py says).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

sys.path.insert(0, str(HERE))
import instructions  # noqa: E402  (benches/load/instructions.py: the callgrind totals)
import run as harness  # noqa: E402  (benches/load/run.py: the raw keep-alive client)

REQUEST = instructions.REQUESTS["plaintext"]

APPS = {"async": "godottpd_async_app.py", "sync": "godottpd_app.py"}
DEPTHS = {"c1": 1, "pipelined": 16}
CONNECTIONS = 64


def run_many(socks: list[socket.socket], count: int) -> None:
    """COUNT requests over SOCKS, one in flight on each: all sent, then every answer read."""
    buffers = [b""] * len(socks)
    done = 0
    while done < count:
        batch = socks[: min(len(socks), count - done)]
        for sock in batch:
            sock.sendall(REQUEST)
        for index, sock in enumerate(batch):
            buffer = buffers[index]
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed")
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += sock.recv(65536)
            buffers[index] = rest[length:]
        done += len(batch)


def measure(python: str, app: str, shape: str, count: int, out: Path, package: Path) -> float:
    port = harness.free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(package),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        # Under valgrind every handler runs some 50 times slower: no hand-off for that.
        GODOTTPD_HANDOFF_TICK_US="500000",
    )
    static = out.parent / "static"
    static.mkdir(exist_ok=True)
    (static / "file.bin").write_bytes(b"x" * 1024)
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            python,
            str(HERE / "servers" / APPS[app]),
            str(port),
            str(static),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = harness.connect(port)
        if shape == "c64":
            socks = [first, *(harness.connect(port) for _ in range(CONNECTIONS - 1))]
            run_many(socks, 640)  # warm-up
            subprocess.run(
                ["callgrind_control", "-i", "on", str(server.pid)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            run_many(socks, count)
        else:
            socks = [first]
            harness.send_requests(first, REQUEST, 300, DEPTHS[shape])
            subprocess.run(
                ["callgrind_control", "-i", "on", str(server.pid)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            harness.send_requests(first, REQUEST, count, DEPTHS[shape])
        subprocess.run(
            ["callgrind_control", "-i", "off", str(server.pid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for sock in socks:
            sock.close()
    finally:
        server.terminate()
        server.wait(120)
    return instructions.totals(out) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--apps", default="async,sync")
    parser.add_argument("--shapes", default="c1,pipelined,c64")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--keep", type=Path, help="keep the callgrind files in this directory")
    parser.add_argument("--package", type=Path, default=REPO / "python")
    args = parser.parse_args()
    version = subprocess.run(
        [args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        print("| python | app | shape | instructions/req |\n|---|---|---|---:|")
        for shape in args.shapes.split(","):
            for app in args.apps.split(","):
                out = where / f"callgrind.{version}.{app}.{shape}.out"
                per_request = measure(args.python, app, shape, args.count, out, args.package)
                print(f"| {version} | {app} | {shape} | {per_request:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
