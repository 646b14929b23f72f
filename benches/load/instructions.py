"""Instructions per request, counted by callgrind: builds and handler modes side by side.

``perf stat -e instructions`` needs hardware counters, which this kind of VM lacks;
``valgrind --tool=callgrind`` counts instructions in software, the same total for the same
binary and input whatever else the machine does. The load benchmark's godottpd app
(``servers/godottpd_app.py``; ``servers/godottpd_async_app.py``, coroutine handlers on an
event loop, with ``--app async``) runs under callgrind with instrumentation off; after a
warm-up on the client's one keep-alive connection, instrumentation is switched on
(``callgrind_control -i on``) for exactly COUNT requests, then off, and the instructions of
every thread of the server are divided by COUNT. Start-up and shutdown are never counted,
so nothing has to be subtracted. Callgrind counts user space only: the kernel's share of a
thread hand-off (context switches, futex and eventfd wakes) is not in the figure, which so
favours the modes that cross threads (``cpu_per_request.py`` measures that part).

    python benches/load/instructions.py --count 2000
    python benches/load/instructions.py --build current=python \\
        --build baseline=/path/to/other/python --shapes c1,pipelined,echo
    python benches/load/instructions.py --variant default=8 --variant inline=0 --app async

Columns: every build (``--build NAME=DIR``, DIR a copy of ``python/`` holding a build of
the extension; default ``current=python``) times every variant (``--variant
NAME=HANDLER_THREADS[:VAR=VALUE...]``, GODOTTPD_HANDLER_THREADS and extra environment, as
in cpu_per_request.py; default ``default=8``, the default mode); the table gives
instructions per request and every column's ratio to the first.

Shapes (``--shapes``): ``c1`` (GET /plaintext, one request at a time), ``pipelined`` (GET
/plaintext, 16 requests per write), and the routes ``plaintext``, ``json``, ``echo`` (POST
of 1 KiB) and ``static`` (the 100 KiB file), sent ``--depth`` requests per write (16, as
``pipelined``).

Under valgrind everything runs some 50 times slower, so every handler would look long to
the hand-off watchdog (``src/python/handoff.rs``, 1 ms tick) and be handed off:
GODOTTPD_HANDOFF_TICK_US is 50000 unless ``--handoff-tick-us`` (or the environment, or a
variant) says otherwise. GODOTTPD_SPIN_US is 0 (``--spin-us``): the busy polling of a loop
thread waiting for its next request (``src/python/inline_io.rs``, ``JobWait``) would count
the instructions of its spinning, which depend on how fast the client answers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # benches/load/run.py

REPO = harness.REPO
APPS = {"sync": "godottpd_app.py", "async": "godottpd_async_app.py"}
WARMUP = 300
ECHO_BODY = b"e" * harness.ECHO_SIZE
REQUESTS = {
    "plaintext": b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n",
    "json": b"GET /json HTTP/1.1\r\nHost: bench\r\n\r\n",
    "echo": b"POST /echo HTTP/1.1\r\nHost: bench\r\n"
    + f"Content-Length: {len(ECHO_BODY)}\r\n\r\n".encode()
    + ECHO_BODY,
    "static": b"GET /static/file.bin HTTP/1.1\r\nHost: bench\r\n\r\n",
}
# shape: (route, requests per write; None: --depth)
SHAPES = {
    "c1": ("plaintext", 1),
    "pipelined": ("plaintext", harness.PIPELINE_DEPTH),
    "plaintext": ("plaintext", None),
    "json": ("json", None),
    "echo": ("echo", None),
    "static": ("static", None),
}


def totals(path: Path) -> int:
    instructions = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            instructions = max(instructions, int(line.split()[1]))
    return instructions


def measure(
    column: str,
    build: Path,
    variant: tuple[str, str, dict[str, str]],
    request: bytes,
    depth: int,
    args: argparse.Namespace,
    tmp: Path,
) -> float:
    """Instructions per request of one server run: callgrind on for exactly COUNT requests."""
    _name, threads, extra = variant
    static = tmp / "static"
    server = harness.build_server("godottpd", static, tmp)
    out = tmp / f"callgrind.{server.port}.out"
    server.name = f"callgrind-{server.port}"
    server.pin = False
    server.env.update(
        PYTHONPATH=str(build),
        GODOTTPD_HANDLER_THREADS=threads,
        GODOTTPD_HANDOFF_TICK_US=str(args.handoff_tick_us),
        GODOTTPD_SPIN_US=str(args.spin_us),
        # callgrind_control takes seconds on a busy machine: the connection waits that long
        # between the warm-up and the counted requests.
        GODOTTPD_KEEPALIVE_TIMEOUT="600",
        PYTHONHASHSEED="0",
    )
    server.env.update(extra)
    server.command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(harness.SERVERS_DIR / APPS[args.app]),
        str(server.port),
        str(static),
    ]
    harness.start(server, tmp, timeout=180)
    try:
        if server.failure:
            raise SystemExit(f"{column}: the server under valgrind: {server.failure}")
        assert server.process is not None
        pid = str(server.process.pid)
        with harness.connect(server.port) as sock:
            harness.send_requests(sock, request, WARMUP, depth)
            subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
            harness.send_requests(sock, request, args.count, depth)
            subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
    finally:
        harness.stop(server, timeout=180)
    counted = totals(out) if out.exists() else 0
    if not counted:
        raise SystemExit(f"no totals in {out}: {harness.tail(server.log_path)}")
    return counted / args.count


def parse_build(text: str) -> tuple[str, Path]:
    name, _, folder = text.partition("=")
    path = Path(folder or name)
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    if not (path / "godottpd").is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no godottpd package in {path}")
    return name, path.resolve()


def column_name(build: str, variant: str, builds: int, variants: int) -> str:
    if builds == 1:
        return variant
    return build if variants == 1 else f"{build}/{variant}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--build",
        action="append",
        type=parse_build,
        metavar="NAME=DIR",
        help="a copy of python/ holding a build (repeatable; default current=python)",
    )
    parser.add_argument(
        "--variant",
        "--variants",
        action="append",
        metavar="NAME=THREADS[:VAR=VALUE...]",
        help="a handler mode, or several comma-separated (repeatable; default default=8)",
    )
    parser.add_argument(
        "--shapes",
        "--routes",
        dest="shapes",
        default="c1,pipelined",
        help="comma-separated, of: " + ", ".join(SHAPES) + " (default c1,pipelined)",
    )
    parser.add_argument("--app", choices=sorted(APPS), default="sync", help="(default sync)")
    parser.add_argument(
        "--count",
        "--requests",
        dest="count",
        type=int,
        default=2000,
        help=f"requests counted per run, after a warm-up of {WARMUP} (default 2000)",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=harness.PIPELINE_DEPTH,
        help="requests per write of the route shapes (default %(default)s)",
    )
    parser.add_argument(
        "--handoff-tick-us",
        type=int,
        default=int(os.environ.get("GODOTTPD_HANDOFF_TICK_US", "50000")),
        help="GODOTTPD_HANDOFF_TICK_US of the server (default 50000; 0: the real 1 ms)",
    )
    parser.add_argument(
        "--spin-us",
        type=int,
        default=int(os.environ.get("GODOTTPD_SPIN_US", "0")),
        help="GODOTTPD_SPIN_US of the server (default 0: no busy polling)",
    )
    args = parser.parse_args()
    builds = args.build or [parse_build("current=python")]
    variants = harness.parse_variants(",".join(args.variant or ["default=8"]))
    shapes = [shape.strip() for shape in args.shapes.split(",") if shape.strip()]
    for shape in shapes:
        if shape not in SHAPES:
            parser.error(f"unknown shape {shape!r}")
    columns = [
        (column_name(build_name, variant[0], len(builds), len(variants)), build, variant)
        for build_name, build in builds
        for variant in variants
    ]
    print(
        f"instructions per request (callgrind, all threads, user space): {args.count} "
        f"requests after {WARMUP} of warm-up, one connection; app {APPS[args.app]}; "
        f"GODOTTPD_HANDOFF_TICK_US={args.handoff_tick_us}, GODOTTPD_SPIN_US={args.spin_us}",
        flush=True,
    )
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="godottpd-callgrind-") as folder:
        tmp = Path(folder)
        harness.static_file(tmp / "static")
        for shape in shapes:
            route, depth = SHAPES[shape]
            for column, build, variant in columns:
                request = REQUESTS[route]
                value = measure(column, build, variant, request, depth or args.depth, args, tmp)
                results[(shape, column)] = value
                print(f"# {shape} {column}: {value:,.0f} instructions/req", flush=True)
    first = columns[0][0]
    names = [column for column, _, _ in columns]
    print()
    print("| shape | " + " | ".join(names + [f"{n} vs {first}" for n in names[1:]]) + " |")
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for shape in shapes:
        values = [results[(shape, name)] for name in names]
        cells = [f"{value:,.0f}" for value in values]
        cells += [f"{value / values[0]:.3f}x" for value in values[1:]]
        print(f"| {shape} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
