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
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # benches/load/run.py

SHAPES = {
    # name: (path, connections, lua script or None)
    "plaintext": ("/plaintext", 64, None),
    "json": ("/json", 64, None),
    "c1": ("/plaintext", 1, None),
    "pipelined": ("/plaintext", 64, "pipeline"),
}


def parse_task_clock(text: str) -> float:
    """perf stat's task-clock, in milliseconds."""
    for line in text.splitlines():
        if "task-clock" in line:
            return float(line.split()[0].replace(",", ""))
    raise RuntimeError(f"no task-clock in perf output:\n{text}")


def measure(
    variant: tuple[str, str, dict], shape: str, duration: float, scripts: dict, tmp: Path
) -> dict:
    _name, threads, extra = variant
    path, connections, script = SHAPES[shape]
    server = harness.build_server("godottpd", tmp / "static", tmp)
    server.env["GODOTTPD_HANDLER_THREADS"] = threads
    server.env.update(extra)
    harness.start(server, tmp, timeout=10)
    try:
        if server.failure:
            raise RuntimeError(f"server on {server.port}: {server.failure}")
        assert server.process is not None
        url = f"http://127.0.0.1:{server.port}{path}"
        lua = scripts[script] if script else None
        # Warm-up, then the measured window with perf attached for exactly wrk's run.
        warmup = harness.wrk_command(url, connections, 1, lua)
        subprocess.run(warmup, capture_output=True, check=True)
        window = harness.wrk_command(url, connections, duration, lua)
        perf = subprocess.run(
            ["perf", "stat", "-e", "task-clock", "-p", str(server.process.pid), "--", *window],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        harness.stop(server)
    requests = harness.parse_wrk(perf.stdout)["requests"]
    if not requests:
        raise RuntimeError(f"no request count in wrk output:\n{perf.stdout}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default=8,inline=0")
    parser.add_argument("--shapes", default="plaintext,json,c1,pipelined")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    variants = harness.parse_variants(args.variants)
    shapes = args.shapes.split(",")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "static").mkdir()
        scripts = harness.write_scripts(tmp)
        results: dict[tuple[str, str], list[dict]] = {}
        for shape in shapes:
            for run in range(args.runs):
                for variant in variants:
                    result = measure(variant, shape, args.duration, scripts, tmp)
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
