"""Server CPU time per request, godottpd's handler modes side by side, on one build.

A repeatable measure for a busy machine: requests/s moves with whatever else runs, the
server's own CPU time per request (``perf stat -e task-clock`` attached to the server's
process, all threads, over exactly the wrk window) much less. Every variant is one process
of ``servers/godottpd_app.py`` pinned to core 0, wrk pinned to core 1; runs are interleaved
(for each run, every variant in turn) and the median is printed with its ratio to inline.

    python benches/load/cpu_per_request.py --runs 5 --duration 2
    python benches/load/cpu_per_request.py --variants threads=8,inline=0 --shapes c1

A variant is NAME=HANDLER_THREADS (the app reads GODOTTPD_HANDLER_THREADS); extra
environment for one variant: NAME=THREADS:VAR=VALUE (``PYTHONPATH=DIR`` times another
build, a copy of ``python/`` holding it). Build first, as run.py says.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PIPELINE_LUA = """init = function(args)
  local r = {}
  for i = 1, 16 do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end
request = function()
  return req
end
"""
SHAPES = {
    # name: (path, connections, lua script or None)
    "plaintext": ("/plaintext", 64, None),
    "json": ("/json", 64, None),
    "c1": ("/plaintext", 1, None),
    "pipelined": ("/plaintext", 64, "pipeline"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} never listened")


def parse_requests(text: str) -> int:
    match = re.search(r"(\d+) requests in", text)
    if not match:
        raise RuntimeError(f"no request count in wrk output:\n{text}")
    return int(match.group(1))


def parse_task_clock(text: str) -> float:
    """perf stat's task-clock, in milliseconds."""
    for line in text.splitlines():
        if "task-clock" in line:
            return float(line.split()[0].replace(",", ""))
    raise RuntimeError(f"no task-clock in perf output:\n{text}")


def measure(variant: tuple[str, str, dict], shape: str, duration: float, lua: Path) -> dict:
    _name, threads, extra = variant
    path, connections, script = SHAPES[shape]
    port = free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO / "python"),
        GODOTTPD_HANDLER_THREADS=threads,
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    with tempfile.TemporaryDirectory() as static:
        server = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                str(HERE / "servers" / "godottpd_app.py"),
                str(port),
                static,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port)
            url = f"http://127.0.0.1:{port}{path}"
            wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "--latency"]
            if script:
                wrk += ["-s", str(lua)]
            # Warm-up, then the measured window with perf attached for exactly wrk's run.
            subprocess.run([*wrk, "-d1", url], capture_output=True, check=True)
            perf = subprocess.run(
                [
                    "perf",
                    "stat",
                    "-e",
                    "task-clock",
                    "-p",
                    str(server.pid),
                    "--",
                    *wrk,
                    f"-d{duration:g}s",
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            server.terminate()
            server.wait(10)
    requests = parse_requests(perf.stdout)
    cpu_ms = parse_task_clock(perf.stderr)
    p50 = re.search(r"(?m)^\s+50%\s+(\S+)", perf.stdout)
    p99 = re.search(r"(?m)^\s+99%\s+(\S+)", perf.stdout)
    return {
        "requests": requests,
        "rps": requests / duration,
        "cpu_us_per_req": cpu_ms * 1000 / requests,
        "p50": p50.group(1) if p50 else "?",
        "p99": p99.group(1) if p99 else "?",
    }


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
    parser.add_argument("--shapes", default="plaintext,json,c1,pipelined")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    variants = parse_variants(args.variants)
    shapes = args.shapes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "pipeline.lua"
        lua.write_text(PIPELINE_LUA)
        results: dict[tuple[str, str], list[dict]] = {}
        for shape in shapes:
            for run in range(args.runs):
                for variant in variants:
                    result = measure(variant, shape, args.duration, lua)
                    results.setdefault((shape, variant[0]), []).append(result)
                    print(
                        f"# {shape} run {run + 1} {variant[0]}: {result['rps']:.0f} req/s, "
                        f"{result['cpu_us_per_req']:.2f} us CPU/req, "
                        f"p50 {result['p50']} p99 {result['p99']}",
                        flush=True,
                    )
    reference = variants[-1][0]
    print(f"\n| shape | variant | req/s | CPU µs/req (median) | vs {reference} | p50 | p99 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for shape in shapes:
        ref = statistics.median(r["cpu_us_per_req"] for r in results[(shape, reference)])
        for variant in variants:
            runs = results[(shape, variant[0])]
            cpu = statistics.median(r["cpu_us_per_req"] for r in runs)
            rps = statistics.median(r["rps"] for r in runs)
            middle = sorted(runs, key=lambda r: r["cpu_us_per_req"])[len(runs) // 2]
            print(
                f"| {shape} | {variant[0]} | {rps:,.0f} | {cpu:.2f} | "
                f"{ref / cpu:.3f}x speed | {middle['p50']} | {middle['p99']} |"
            )


if __name__ == "__main__":
    main()
