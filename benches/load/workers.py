"""Worker scaling: godottpd, granian and socketify with 1 and 2 worker processes, and file
serving with 1 and 2 Rust I/O threads (issue 12, points 2 and 5).

One command, from the repository root, inside a virtual environment, after building the
extension as run.py says (``cargo build --release && cp target/release/libgodottpd.so
python/godottpd/_godottpd.abi3.so``):

    python benches/load/workers.py            # 3 runs x 5 s per case, about 8 minutes
    python benches/load/workers.py --quick    # 1 run x 2 s, about 2 minutes (smoke test)

What is timed (each case one server started once, every case of a shape timed in turn
within each run, the order reversed every other run):

- the Python routes ``/plaintext`` and ``/json`` (a handler each), served by godottpd
  (``serve_forever(workers=N)``, the default mode with handler threads, and the inline mode
  ``handler_threads=0``), granian (``--workers N``, RSGI, one runtime thread per worker) and
  socketify (N processes forked before the App is built, as its own ``--workers`` does),
  with N = 1 and 2;
- the 100 KiB static file through ``python -m godottpd DIR --threads 1`` and ``--threads 2``
  (one process, the Rust I/O threads) and ``--workers 2`` (two processes, one I/O thread
  each); granian and socketify (a handler answering the file from memory, 1 and 2
  workers) are timed beside them for reference.

No process is pinned: the servers may use both cores, and the load generator shares them.
So that it costs little, wrk sends 16 pipelined requests per write (TechEmpower's
pipeline.lua, run.py's ``pipelined`` shape), one wrk thread, 64 connections; its own CPU
share is printed beside every figure, with the CPU that other work on the machine took
during the window (from /proc/stat: busy time minus the server's and wrk's).

Figures per case, the median of the runs: requests/s; the server's CPU time per request
(utime+stime from /proc/PID/stat, all threads, summed over the process tree: supervisor or
master plus workers, over exactly the wrk window); the cores it used (that CPU time over
the window); how its CPU split over its processes (a check that the kernel spread the
connections over the workers); peak RSS of the tree. Ratios: 2 workers / 1 worker for each
server, and godottpd / each peer at each count, and the targets (2 workers >= 1.7x one on
the Python routes; ahead of granian and socketify at each count) as pass/miss with margins.

Results: benches/results/PREFIX-raw.txt (every wrk output), PREFIX-results.json and
PREFIX-results.md; PREFIX is ``workers`` (``workers-quick`` with ``--quick``).

It reuses run.py's helpers (server commands, start/stop, the answer checks, wrk and the
CPU accounting) by importing it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # benches/load/run.py

REPO = harness.REPO
RESULTS = harness.RESULTS
CONNECTIONS = 64
COUNTS = [1, 2]
SCALING_TARGET = 1.7
CONTENDED = 0.5  # cores taken by other work from which the run is marked as saturated
PYTHON_SHAPES = ["plaintext", "json"]
PEER_SERVERS = ["granian", "socketify"]
GODOTTPD_SERVERS = ["godottpd", "godottpd-inline"]
ROUTE_SERVERS = [*GODOTTPD_SERVERS, *PEER_SERVERS]

SHAPES = {
    "plaintext": harness.Shape(
        "plaintext", "GET /plaintext (a Python handler)", "plaintext", script="pipeline"
    ),
    "json": harness.Shape(
        "json", "GET /json (a Python handler, json per request)", "json", script="pipeline"
    ),
    "static": harness.Shape(
        "static", "GET /static/file.bin (100 KiB file)", "static", script="pipeline"
    ),
}


@dataclass
class Case:
    """One server at one worker (or thread) count."""

    server: str  # godottpd, godottpd-inline, granian, socketify, godottpd-cli
    count: int
    axis: str  # "workers" or "threads"
    shapes: list[str]
    handle: harness.Server | None = None
    samples: dict[str, list[dict]] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        letter = "t" if self.axis == "threads" else "w"
        return f"{self.server}-{letter}{self.count}"

    @property
    def label(self) -> str:
        if self.server == "godottpd-cli":
            if self.axis == "threads":
                return f"python -m godottpd --threads {self.count}"
            return f"python -m godottpd --workers {self.count}"
        return f"{self.server} x{self.count}"


def all_cores() -> str:
    return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))


def build(case: Case, www: Path, static_dir: Path, tmp: Path) -> harness.Server:
    python = sys.executable
    if case.server == "godottpd-cli":
        port = harness.free_port()
        axis = ["--threads", str(case.count)]
        if case.axis == "workers":
            axis = ["--threads", "1", "--workers", str(case.count)]
        env = {"PYTHONPATH": str(REPO / "python"), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [python, "-m", "godottpd", str(www), "--port", str(port)]
        command += ["--bind", "127.0.0.1", "--quiet", *axis]
        server = harness.Server(
            name=case.key, routes=["static"], command=command, env=env, port=port
        )
        return server
    server = harness.build_server(case.server, static_dir, tmp)
    server.name = case.key
    server.routes = [SHAPES[shape].route for shape in case.shapes]
    if case.server in GODOTTPD_SERVERS:
        server.env["GODOTTPD_WORKERS"] = str(case.count)
    elif case.server == "granian":
        at = server.command.index("--workers")
        server.command[at + 1] = str(case.count)
    elif case.server == "socketify":
        server.command.append(str(case.count))
    return server


def cases_for(shapes: list[str], servers: list[str]) -> list[Case]:
    cases = []
    route_shapes = [s for s in shapes if s in PYTHON_SHAPES]
    for server in servers:
        for count in COUNTS:
            wanted = list(route_shapes)
            if "static" in shapes and server in PEER_SERVERS:
                wanted.append("static")
            if wanted:
                cases.append(Case(server, count, "workers", wanted))
    if "static" in shapes and "godottpd" in servers:
        for count in COUNTS:
            cases.append(Case("godottpd-cli", count, "threads", ["static"]))
        cases.append(Case("godottpd-cli", 2, "workers", ["static"]))
    return cases


def cpu_times() -> tuple[float, float]:
    """The machine's busy and steal seconds since boot, all CPUs (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    tick = harness.CLOCK_TICK
    return (user + nice + system + irq + softirq) / tick, steal / tick


def tree_wait_ns(pid: int) -> dict[int, int]:
    """Nanoseconds each thread of the tree spent runnable but waiting for a core
    (/proc/PID/task/TID/schedstat, second field): how much more CPU the server wanted."""
    waits = {}
    for process in harness.tree_pids(pid):
        try:
            for task in Path(f"/proc/{process}/task").iterdir():
                try:
                    waits[int(task.name)] = int((task / "schedstat").read_text().split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        except OSError:
            continue
    return waits


def timed(case: Case, shape: harness.Shape, seconds: float, scripts, tmp: Path):
    """One wrk run against one case: run.py's wrk() plus the machine's other load and the
    split of the server's CPU over its processes."""
    handle = case.handle
    assert handle is not None and handle.process is not None
    root = handle.process.pid
    busy_before, steal_before = cpu_times()
    before = harness.tree_cpu_ticks(root)
    waits_before = tree_wait_ns(root)
    with harness.RssSampler(root) as sampler:
        output, stats = harness.wrk(handle, shape, seconds, CONNECTIONS, scripts, tmp, False)
    waits_after = tree_wait_ns(root)
    after = harness.tree_cpu_ticks(root)
    busy_after, steal_after = cpu_times()
    window = stats["window_s"] or seconds
    busy = (busy_after - busy_before) / window
    server_cores = stats["server_cpu_share"] or 0.0
    wrk_cores = stats["wrk_cpu_share"] or 0.0
    per_process = sorted(
        (
            (value - before.get(pid, 0)) / harness.CLOCK_TICK / window
            for pid, value in after.items()
        ),
        reverse=True,
    )
    stats.update(
        {
            "machine_busy_cores": busy,
            "other_cores": max(busy - server_cores - wrk_cores, 0.0),
            "steal_cores": (steal_after - steal_before) / window,
            # runnable but not running: the cores the server waited for (0 on an idle machine)
            "waiting_cores": sum(
                max(value - waits_before.get(tid, 0), 0) for tid, value in waits_after.items()
            )
            / 1e9
            / window,
            # the processes that did work (supervisors and masters idle at ~0)
            "process_cores": [round(share, 3) for share in per_process if share >= 0.02],
            "processes": len(after),
            "peak_rss_kib": sampler.peak,
        }
    )
    return output, stats


def median(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(case: Case, shape: str) -> dict:
    runs = case.samples.get(shape, [])
    # the split of the run with the median req/s
    middle = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2] if runs else None
    return {
        "case": case.key,
        "label": case.label,
        "server": case.server,
        "axis": case.axis,
        "count": case.count,
        "shape": shape,
        "rps": median(runs, "rps") or 0.0,
        "rps_runs": [run["rps"] for run in runs],
        "cpu_us_per_req": median(runs, "cpu_us_per_req"),
        "cpu_us_per_req_runs": [run["cpu_us_per_req"] for run in runs],
        "server_cores": median(runs, "server_cpu_share"),
        "wrk_cores": median(runs, "wrk_cpu_share"),
        "wrk_cores_max": max((run["wrk_cpu_share"] or 0.0 for run in runs), default=0.0),
        "other_cores": median(runs, "other_cores"),
        "steal_cores": median(runs, "steal_cores"),
        "waiting_cores": median(runs, "waiting_cores"),
        "process_cores": middle["process_cores"] if middle else [],
        "processes": runs[-1]["processes"] if runs else 0,
        "errors": sum(run["non2xx"] + run["socket_errors"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
        "peak_rss_kib": max((run["peak_rss_kib"] for run in runs), default=0),
    }


# ---------------------------------------------------------------- ratios and targets


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def run_ratios(a: dict | None, b: dict | None) -> list[float]:
    """The ratio within each run (the runs are interleaved, so each pair shares its noise)."""
    if not a or not b:
        return []
    return [x / y for x, y in zip(a["rps_runs"], b["rps_runs"]) if y]


def target(name: str, shape: str, a: dict | None, b: dict | None, threshold: float) -> dict:
    value = ratio(a["rps"], b["rps"]) if a and b else None
    per_run = run_ratios(a, b)
    verdict = "n/a" if value is None else ("pass" if value >= threshold else "miss")
    return {
        "target": name,
        "shape": shape,
        "verdict": verdict,
        "ratio": value,
        "threshold": threshold,
        "margin": None if value is None else value / threshold - 1,
        "run_ratios": per_run,
        "detail": (
            f"{a['label']} {a['rps']:,.0f} vs {b['label']} {b['rps']:,.0f} req/s"
            if a and b
            else "not timed"
        ),
    }


def evaluate(rows: dict[str, dict[str, dict]]) -> list[dict]:
    """rows[shape][case key] -> summary. Targets for both godottpd modes, the default first."""
    out = []
    for shape in PYTHON_SHAPES:
        by_key = rows.get(shape, {})
        for server in GODOTTPD_SERVERS:
            one, two = by_key.get(f"{server}-w1"), by_key.get(f"{server}-w2")
            if one and two:
                name = f"{server}: 2 workers >= 1.7x 1 worker"
                out.append(target(name, shape, two, one, SCALING_TARGET))
        for server in GODOTTPD_SERVERS:
            for count in COUNTS:
                mine = by_key.get(f"{server}-w{count}")
                for peer in PEER_SERVERS:
                    other = by_key.get(f"{peer}-w{count}")
                    if mine and other:
                        plural = "worker" if count == 1 else "workers"
                        name = f"{server}: ahead of {peer} at {count} {plural}"
                        out.append(target(name, shape, mine, other, 1.0))
    return out


# ---------------------------------------------------------------- report


def fmt_rps(value: float | None) -> str:
    if not value:
        return "n/a"
    return f"{value / 1000:.1f}k" if value >= 10000 else f"{value:,.0f}"


def fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} µs"


def fmt_cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def fmt_x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def fmt_range(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f" (per run {min(values):.2f}-{max(values):.2f}x)"


def scaling_table(shape: str, by_key: dict[str, dict]) -> list[str]:
    """Servers x worker counts, with 2/1 and godottpd/peer ratios."""
    lines = [
        "| server | 1: req/s | CPU/req | cores | waited | wrk | 2: req/s | CPU/req | cores | "
        "waited | wrk | 2 vs 1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in ROUTE_SERVERS:
        one, two = by_key.get(f"{server}-w1"), by_key.get(f"{server}-w2")
        if not one and not two:
            continue
        cells = [f"**{server}**" if server == "godottpd" else server]
        for row in (one, two):
            if row:
                cells += [
                    fmt_rps(row["rps"]),
                    fmt_us(row["cpu_us_per_req"]),
                    fmt_cores(row["server_cores"]),
                    fmt_cores(row.get("waiting_cores")),
                    f"{row['wrk_cores']:.0%}",
                ]
            else:
                cells += ["n/a", "", "", "", ""]
        cells.append(fmt_x(ratio(two["rps"], one["rps"])) if one and two else "")
        lines.append("| " + " | ".join(cells) + " |")
    for server in GODOTTPD_SERVERS:
        for peer in PEER_SERVERS:
            cells = [f"{server} / {peer}"]
            present = False
            for count in COUNTS:
                mine, other = by_key.get(f"{server}-w{count}"), by_key.get(f"{peer}-w{count}")
                if mine and other:
                    present = True
                    cells += [
                        fmt_x(ratio(mine["rps"], other["rps"])),
                        fmt_x(ratio(mine["cpu_us_per_req"], other["cpu_us_per_req"])),
                        "",
                        "",
                        "",
                    ]
                else:
                    cells += ["", "", "", "", ""]
            if present:
                lines.append("| " + " | ".join([*cells, ""]) + " |")
    return lines


def static_table(by_key: dict[str, dict]) -> list[str]:
    lines = [
        "| server | req/s | CPU/req | cores | waited | wrk | vs --threads 1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = by_key.get("godottpd-cli-t1")
    order = ["godottpd-cli-t1", "godottpd-cli-t2", "godottpd-cli-w2"]
    order += [f"{peer}-w{count}" for peer in PEER_SERVERS for count in COUNTS]
    for key in order:
        row = by_key.get(key)
        if not row:
            continue
        versus = fmt_x(ratio(row["rps"], base["rps"])) if base else ""
        lines.append(
            f"| {row['label']} | {fmt_rps(row['rps'])} | {fmt_us(row['cpu_us_per_req'])} | "
            f"{fmt_cores(row['server_cores'])} | {fmt_cores(row.get('waiting_cores'))} | "
            f"{row['wrk_cores']:.0%} | {versus} |"
        )
    return lines


def details_table(results: dict) -> list[str]:
    lines = [
        "| shape | case | req/s per run | CPU/req per run | cores per process | "
        "waited (cores) | other load (cores) | steal | errors | peak RSS |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for shape, rows in results["shapes"].items():
        for row in rows:
            rps = ", ".join(fmt_rps(value) for value in row["rps_runs"])
            cpu = ", ".join(f"{value:.2f}" for value in row["cpu_us_per_req_runs"] if value)
            split = " + ".join(f"{value:.2f}" for value in row["process_cores"]) or "?"
            lines.append(
                f"| {shape} | {row['label']} | {rps} | {cpu} µs | {split} "
                f"({row['processes']} proc.) | {fmt_cores(row.get('waiting_cores'))} | "
                f"{fmt_cores(row['other_cores'])} | "
                f"{fmt_cores(row['steal_cores'])} | {row['errors']} | "
                f"{row['peak_rss_kib'] / 1024:.0f} MiB |"
            )
    return lines


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = []
    if meta["quick"]:
        lines += ["**Smoke run (`--quick`): 1 short run per case, not a measurement.**", ""]
    load = meta["load_average"]
    lines += [
        f"Run {meta['date']}: {meta['runs']} run(s) x {meta['duration']} s per case after a "
        f"{meta['warmup']} s warm-up, median of the runs; the cases of a shape interleaved "
        "within each run. No process pinned: the servers and the load generator share the "
        f"machine's {results['machine']['cpus']} cores.",
        "",
        f"**The load generator**: `wrk -t1 -c{CONNECTIONS}` with {harness.PIPELINE_DEPTH} "
        "pipelined requests per write (TechEmpower's pipeline.lua), so that it costs little "
        "CPU: its share of a core is the **wrk** column. **CPU/req**: the server's "
        "utime+stime (`/proc/PID/stat`, all threads, summed over the process tree: supervisor "
        "or master plus every worker) over exactly the wrk window, divided by the requests "
        "answered. **cores**: that CPU time over the window (2.00 is both cores). "
        "**waited**: the time its threads were runnable but waiting for a core "
        "(`/proc/PID/task/TID/schedstat`) over the window, in cores: near 0 on an idle "
        "machine; large when other work held the cores the server wanted.",
        "",
        f"**How busy the machine was**: load average (1 min) {load[0]} before the run and "
        f"{load[1]} after; the *other load* column of the details is the CPU other work took "
        "during each window (/proc/stat busy time minus the server's and wrk's). Other "
        "engineers build and test on this machine: absolute figures are low and noisy, and "
        "the ratios within one run are what compare.",
        "",
    ]
    other = meta.get("other_cores_median")
    if other is not None and other >= CONTENDED:
        lines += [
            f"**The machine was saturated**: other work took a median {other:.2f} of its "
            f"{results['machine']['cpus']} cores during the windows, so each server got the "
            "share of the cores the scheduler gave it (the *cores* column), not what it could "
            "use. Requests/s, and with them the 2-vs-1 ratios, measure that share as much as "
            "the server; **CPU/req** is the figure that carries over to an idle machine (equal "
            "CPU/req at 1 and 2 workers: a second worker costs nothing per request).",
            "",
        ]
    for shape in PYTHON_SHAPES:
        by_key = {row["case"]: row for row in results["shapes"].get(shape, [])}
        if not by_key:
            continue
        lines += [
            f"### {shape}: {SHAPES[shape].label}, workers 1 and 2",
            "",
            "Ratio rows: godottpd's req/s over the peer's at the same count, then its CPU/req "
            "over the peer's (below 1: less CPU per request). godottpd is the default mode "
            "(handler threads); godottpd-inline has `handler_threads=0`.",
            "",
            *scaling_table(shape, by_key),
            "",
        ]
    by_key = {row["case"]: row for row in results["shapes"].get("static", [])}
    if by_key:
        lines += [
            f"### static: {SHAPES['static'].label}, Rust I/O threads",
            "",
            "`python -m godottpd DIR` (`HttpFileRouter`, `sendfile`) with `--threads 1` and "
            "`--threads 2` (one process), and `--workers 2` (two processes of one I/O thread); "
            "granian and socketify answer the file from memory through a handler, for "
            "reference.",
            "",
            *static_table(by_key),
            "",
        ]
    targets = results["targets"]
    if targets:
        passed = sum(t["verdict"] == "pass" for t in targets)
        missed = sum(t["verdict"] == "miss" for t in targets)
        lines += [
            f"### Targets (issue 12, point 5): {passed} pass, {missed} miss",
            "",
            "Ratios of median req/s; margin: how far past the threshold (negative: short by); "
            "in brackets the ratio within each interleaved run.",
            "",
        ]
        for t in targets:
            verdict = {"pass": "PASS", "miss": "MISS"}.get(t["verdict"], "n/a")
            if t["ratio"] is None:
                lines.append(f"- **{verdict}** {t['shape']}: {t['target']}: {t['detail']}")
                continue
            lines.append(
                f"- **{verdict}** {t['shape']}: {t['target']}: {t['ratio']:.2f}x (target >= "
                f"{t['threshold']:.2f}x, margin {t['margin'] * 100:+.1f} %)"
                f"{fmt_range(t['run_ratios'])}: {t['detail']}"
            )
        lines.append("")
    lines += ["### Every case", "", *details_table(results), ""]
    if results["not_timed"]:
        lines += ["Not timed:", ""]
        lines += [f"- {name}: {why}" for name, why in results["not_timed"].items()]
        lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    lines.append("")
    m = results["machine"]
    lines.append(
        f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, Linux {m['kernel']}, Python "
        f"{m['python']}, {m['wrk']}."
    )
    lines += ["", f"Command: `{meta['command']}` ({meta['elapsed_s']:.0f} s)"]
    return "\n".join(lines) + "\n"


def console(results: dict) -> str:
    """The tables for the terminal: the Markdown ones read well enough as text."""
    return markdown(results)


# ---------------------------------------------------------------- main


def ensure_peers(servers: list[str], no_install: bool) -> dict[str, str]:
    """pip-installs granian and socketify into this venv when missing (run.py's rules)."""
    unavailable = {}
    for server in servers:
        if server not in PEER_SERVERS:
            continue
        if not harness.have_module(server) and not no_install:
            harness.pip_install(server, allow_global=False)
        if not harness.have_module(server):
            unavailable[server] = f"{server} is not installed in {sys.prefix}"
        elif server == "socketify" and (problem := harness.socketify_loads()):
            unavailable[server] = f"does not load: {problem}"
    return unavailable


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run x 2 s after a 1 s warm-up")
    parser.add_argument("--duration", type=int, help="seconds per timed run (default 5)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per case (default 2)")
    parser.add_argument("--runs", type=int, help="timed runs per case (default 3)")
    parser.add_argument(
        "--servers",
        default=",".join(ROUTE_SERVERS),
        help="comma-separated, of: " + ", ".join(ROUTE_SERVERS) + " (godottpd includes the "
        "file-serving cases)",
    )
    parser.add_argument(
        "--shapes",
        default=",".join(SHAPES),
        help="comma-separated, of: " + ", ".join(SHAPES),
    )
    parser.add_argument(
        "--wait-load",
        type=float,
        metavar="LOAD",
        help="first wait (up to --wait-max seconds) for the 1-minute load average to fall "
        "below LOAD",
    )
    parser.add_argument("--wait-max", type=float, default=600.0, help="(default 600)")
    parser.add_argument("--no-install", action="store_true", help="pip-install nothing")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--prefix", help="file name prefix (default workers)")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only rewrite the .md of a recorded run"
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads(args.render.read_text())
        others = [row["other_cores"] for rows in results["shapes"].values() for row in rows]
        others = [value for value in others if value is not None]
        results["meta"].setdefault(
            "other_cores_median", round(statistics.median(others), 2) if others else None
        )
        md = args.render.with_name(args.render.name.replace("-results.json", "-results.md"))
        md.write_text(markdown(results))
        print(md.read_text())
        return
    defaults = (
        {"duration": 2, "warmup": 1, "runs": 1, "prefix": "workers-quick"}
        if args.quick
        else {"duration": 5, "warmup": 2, "runs": 3, "prefix": "workers"}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for name in servers:
        if name not in ROUTE_SERVERS:
            parser.error(f"unknown server {name!r}")
    for name in shapes:
        if name not in SHAPES:
            parser.error(f"unknown shape {name!r}")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed")

    # run.py pins a server to core 0 and wrk to core 1; here nothing is pinned.
    harness.SERVER_CORE = harness.CLIENT_CORE = all_cores()
    not_timed = ensure_peers(servers, args.no_install)
    servers = [s for s in servers if s not in not_timed]
    nofile = harness.raise_fd_limit(4 * CONNECTIONS + 256)

    tmp = Path(tempfile.mkdtemp(prefix="godottpd-workers-"))
    www = tmp / "www"
    static_dir = www / "static"
    static_data = harness.static_file(static_dir)
    scripts = harness.write_scripts(tmp)

    if args.wait_load is not None:
        deadline = time.monotonic() + args.wait_max
        while os.getloadavg()[0] >= args.wait_load and time.monotonic() < deadline:
            time.sleep(5)
        harness.log(f"load average {os.getloadavg()[0]:.2f} (waited for < {args.wait_load})")
    cases = cases_for(shapes, servers)
    started_at = time.monotonic()
    load_before = os.getloadavg()
    raw: list[str] = []
    live: list[Case] = []
    harness.log(
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
        f"{len(cases)} cases; wrk -t1 -c{CONNECTIONS}, {harness.PIPELINE_DEPTH} pipelined "
        "requests per write (so that wrk costs little CPU); nothing pinned"
    )
    try:
        for case in cases:
            case.handle = build(case, www, static_dir, tmp)
            harness.start(case.handle, tmp)
            handle = case.handle
            if not handle.failure:
                handle.failure = harness.check(handle, static_data, b"")
            if not handle.failure:
                # every worker must be up (a worker that is not yet listening gets nothing)
                time.sleep(0.5 if case.count > 1 else 0.0)
            if handle.failure:
                harness.log(f"{case.label}: FAILED, not timed: {handle.failure}")
                not_timed[case.key] = handle.failure
                harness.stop(handle)
                continue
            live.append(case)
            harness.log(f"{case.label}: listening on {handle.port}, answers checked")
        for shape_name in shapes:
            shape = SHAPES[shape_name]
            active = [case for case in live if shape_name in case.shapes]
            for case in active:
                output, _ = timed(case, shape, args.warmup, scripts, tmp)
                raw.append(f"==== {case.key} {shape_name} warm-up\n{output}")
            for run in range(args.runs):
                order = active if run % 2 == 0 else list(reversed(active))
                for case in order:
                    assert case.handle is not None and case.handle.process is not None
                    if case.handle.process.poll() is not None:
                        continue
                    output, stats = timed(case, shape, args.duration, scripts, tmp)
                    case.samples.setdefault(shape_name, []).append(stats)
                    raw.append(f"==== {case.key} {shape_name} run {run + 1}\n{output}")
                    split = "+".join(f"{v:.2f}" for v in stats["process_cores"])
                    harness.log(
                        f"{shape_name:9} run {run + 1}/{args.runs} {case.label:32} "
                        f"{stats['rps']:>10,.0f} req/s  CPU/req "
                        f"{harness.fmt_us(stats['cpu_us_per_req']):>9}  cores {split:12} "
                        f"wrk {stats['wrk_cpu_share']:.0%}  waited {stats['waiting_cores']:.2f}  "
                        f"others {stats['other_cores']:.2f}"
                    )
        for case in live:
            assert case.handle is not None and case.handle.process is not None
            if case.handle.process.poll() is not None:
                not_timed.setdefault(
                    case.key, f"died during the run: {harness.tail(case.handle.log_path)}"
                )
    finally:
        for case in live:
            assert case.handle is not None
            harness.stop(case.handle)
            raw.append(
                f"==== {case.key} server output (last lines)\n"
                f"{harness.tail(case.handle.log_path, 20)}"
            )

    load_after = os.getloadavg()
    versions = {s: harness.version_of(s) for s in servers if s != "godottpd-inline"}
    results: dict = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "quick": args.quick,
            "runs": args.runs,
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": CONNECTIONS,
            "pipeline_depth": harness.PIPELINE_DEPTH,
            "pinned": False,
            "nofile": nofile,
            "elapsed_s": round(time.monotonic() - started_at, 1),
            "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
            "load_average_1_5_15": {
                "before": [round(v, 2) for v in load_before],
                "after": [round(v, 2) for v in load_after],
            },
            "command": " ".join(["python", "benches/load/workers.py", *sys.argv[1:]]),
        },
        "machine": harness.machine(),
        "versions": versions,
        "not_timed": not_timed,
        "shapes": {},
    }
    for shape_name in shapes:
        rows = [summarize(case, shape_name) for case in live if case.samples.get(shape_name)]
        if rows:
            results["shapes"][shape_name] = rows
    by_shape = {
        shape: {row["case"]: row for row in rows} for shape, rows in results["shapes"].items()
    }
    results["targets"] = evaluate(by_shape)
    others = [row["other_cores"] for rows in results["shapes"].values() for row in rows]
    others = [value for value in others if value is not None]
    results["meta"]["other_cores_median"] = round(statistics.median(others), 2) if others else None
    static = by_shape.get("static", {})
    results["file_threads_scaling"] = ratio(
        static.get("godottpd-cli-t2", {}).get("rps"), static.get("godottpd-cli-t1", {}).get("rps")
    )

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.prefix}-raw.txt").write_text("\n".join(raw))
    (args.out / f"{args.prefix}-results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / f"{args.prefix}-results.md").write_text(text)
    print()
    print(console(results))
    harness.log(f"done in {results['meta']['elapsed_s']:.0f} s; results in {args.out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
