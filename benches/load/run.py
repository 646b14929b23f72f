"""Load benchmark: godottpd against the Python servers people choose, and nginx.

One command, from the repository root:

    python benches/load/run.py                       # everything, 3 runs x 5 s per route
    python benches/load/run.py --duration 2 --runs 1 --servers godottpd,uvicorn

It installs what it needs (pip: granian, socketify, uvicorn[standard], matplotlib; apt:
wrk, nginx-light, libuv1), builds nothing: godottpd is imported from ``python/`` (build it
first: ``cargo build --release && cp target/release/libgodottpd.so
python/godottpd/_godottpd.abi3.so``). Each server is one process (its process tree for
granian), pinned to core 0 with taskset; wrk runs pinned to core 1. Every server is checked
for correct answers with a real HTTP client first; one that fails is reported, not timed.

Runs are interleaved (for each route, for each run, every server in turn) so that noise from
other work on the machine spreads over all servers alike; compare the ratios within one run.
Results go to benches/results/: load-raw.txt (every wrk output), load-results.json,
load-results.md (the table) and load-chart.png.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SERVERS_DIR = HERE / "servers"
RESULTS = REPO / "benches" / "results"

SERVER_CORE = "0"
CLIENT_CORE = "1"
STATIC_SIZE = 100 * 1024
ECHO_SIZE = 1024

ROUTES = ["plaintext", "json", "echo", "static"]
ROUTE_LABELS = {
    "plaintext": "GET /plaintext",
    "json": "GET /json",
    "echo": "POST /echo (1 KiB)",
    "static": "GET /static/file.bin (100 KiB)",
}
ROUTE_PATHS = {
    "plaintext": "/plaintext",
    "json": "/json",
    "echo": "/echo",
    "static": "/static/file.bin",
}
ALL_SERVERS = [
    "godottpd",
    "godottpd-inline",
    "godottpd-baseline",
    "granian",
    "socketify",
    "uvicorn",
    "http.server",
    "nginx",
]
DEFAULT_SERVERS = [name for name in ALL_SERVERS if name != "godottpd-baseline"]
PYTHON_PEERS = ["granian", "socketify", "uvicorn", "http.server"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- installation


def pip_install(requirement: str) -> bool:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log(f"pip install {requirement} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.returncode == 0


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        log(f"not root: cannot apt-get install {' '.join(packages)}")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    log(f"apt-get install {' '.join(packages)}")
    subprocess.run(["apt-get", "update", "-qq", *lock], env=env, capture_output=True)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *lock, *packages],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        log(f"apt-get install failed: {result.stderr.strip()[-300:]}")


def have_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def socketify_loads() -> str | None:
    """socketify's wheel carries a native library that needs libuv; None when it imports."""
    result = subprocess.run(
        [sys.executable, "-c", "import socketify"], capture_output=True, text=True
    )
    return (
        None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1][:200]
    )


def install(servers: list[str]) -> dict[str, str]:
    """Installs what is missing. Returns the servers that cannot run, with why."""
    apt_needed = []
    if not shutil.which("wrk"):
        apt_needed.append("wrk")
    if "nginx" in servers and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        apt_needed.append("nginx-light")
    if "socketify" in servers and not Path("/usr/lib/x86_64-linux-gnu/libuv.so.1").exists():
        apt_needed.append("libuv1")
    if apt_needed:
        apt_install(apt_needed)
    pip_needed = {
        "granian": ("granian", "granian"),
        "socketify": ("socketify", "socketify"),
        "uvicorn": ("uvicorn", "uvicorn[standard]"),
    }
    for server, (module, requirement) in pip_needed.items():
        if server in servers and not have_module(module):
            pip_install(requirement)
    if "uvicorn" in servers and not (have_module("uvloop") and have_module("httptools")):
        pip_install("uvicorn[standard]")
    if not have_module("matplotlib"):
        pip_install("matplotlib")
    unavailable = {}
    for server, (module, _) in pip_needed.items():
        if server in servers and not have_module(module):
            unavailable[server] = f"pip could not install {module}"
    if "socketify" in servers and "socketify" not in unavailable:
        problem = socketify_loads()
        if problem:
            unavailable["socketify"] = f"does not load: {problem}"
    if "uvicorn" in servers and not (have_module("uvloop") and have_module("httptools")):
        unavailable["uvicorn"] = "uvloop or httptools missing"
    if "nginx" in servers and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        unavailable["nginx"] = "nginx not installed"
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed and could not be installed")
    return unavailable


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NGINX_CONF = """
worker_processes 1;
master_process off;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server_tokens off;
    types {{ }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location = /plaintext {{
            default_type "text/plain; charset=utf-8";
            return 200 "Hello, World!";
        }}
        location = /json {{
            default_type application/json;
            return 200 '{{"message":"Hello, World!"}}';
        }}
        location /static/ {{ default_type application/octet-stream; alias {static}/; }}
    }}
}}
"""


@dataclass
class Server:
    name: str
    routes: list[str]
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    note: str = ""
    failure: str = ""
    peak_rss_kib: dict[str, int] = field(default_factory=dict)


def build_server(name: str, static_dir: Path, tmp: Path, baseline: Path | None = None) -> Server:
    port = free_port()
    python = sys.executable
    env = {"BENCH_STATIC_DIR": str(static_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    server = Server(name=name, routes=list(ROUTES), port=port, env=env)
    if name in ("godottpd", "godottpd-inline", "godottpd-baseline"):
        env["PYTHONPATH"] = str(baseline if name == "godottpd-baseline" else REPO / "python")
        # godottpd-inline: handlers run on the I/O thread (handler_threads=0), the fast mode
        # for short handlers; godottpd: the default pool of handler threads.
        env["GODOTTPD_HANDLER_THREADS"] = "0" if name == "godottpd-inline" else "8"
        server.command = [python, str(SERVERS_DIR / "godottpd_app.py"), str(port), str(static_dir)]
    elif name == "granian":
        granian = [python, "-m", "granian"]
        server.command = [
            *granian,
            "--interface",
            "rsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--http",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "--working-dir",
            str(SERVERS_DIR),
            "granian_app:app",
        ]
    elif name == "socketify":
        server.command = [python, str(SERVERS_DIR / "socketify_app.py"), str(port), str(static_dir)]
    elif name == "uvicorn":
        server.command = [
            python,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--app-dir",
            str(SERVERS_DIR),
            "uvicorn_app:app",
        ]
    elif name == "http.server":
        server.command = [
            python,
            str(SERVERS_DIR / "httpserver_app.py"),
            str(port),
            str(static_dir),
        ]
    elif name == "nginx":
        nginx_tmp = tmp / "nginx"
        nginx_tmp.mkdir(exist_ok=True)
        conf = nginx_tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=nginx_tmp, port=port, static=static_dir))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        server.command = [nginx, "-p", str(nginx_tmp), "-c", str(conf)]
        server.routes = ["plaintext", "json", "static"]
        server.note = (
            "fixed strings from the config; no echo (nginx has no native body echo); sendfile"
        )
    else:
        raise ValueError(name)
    return server


def start(server: Server, tmp: Path) -> None:
    server.log_path = tmp / f"{server.name}.log"
    output = server.log_path.open("wb")
    env = dict(os.environ, **server.env)
    server.process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *server.command],
        stdout=output,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(SERVERS_DIR),
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.failure = f"exited with {server.process.returncode}: {tail(server.log_path)}"
            return
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    server.failure = f"did not listen within 20 s: {tail(server.log_path)}"


def stop(server: Server) -> None:
    process = server.process
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def tail(path: Path | None, lines: int = 3) -> str:
    if path is None or not path.exists():
        return ""
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def tree_rss_kib(pid: int) -> int:
    """Sum of VmRSS over a process and its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            match = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
            total += int(match.group(1)) if match else 0
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except (OSError, ValueError):
            continue
    return total


class RssSampler:
    """Samples the RSS of one server's process tree every 100 ms while a route runs."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_kib(self.pid))
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- correctness


def check(server: Server, static_data: bytes, echo_body: bytes) -> str:
    """Asks each route once with http.client; returns what is wrong, or ''."""
    expected = {
        "plaintext": ("GET", None, b"Hello, World!", "text/plain"),
        "json": ("GET", None, None, "application/json"),
        "echo": ("POST", echo_body, echo_body, "application/octet-stream"),
        "static": ("GET", None, static_data, "application/octet-stream"),
    }
    problems = []
    for route in server.routes:
        method, body, want, content_type = expected[route]
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
            connection.request(method, ROUTE_PATHS[route], body=body, headers=headers)
            response = connection.getresponse()
            got = response.read()
            got_type = response.getheader("Content-Type") or ""
            if response.status != 200:
                problems.append(f"{route}: status {response.status}")
            elif not got_type.startswith(content_type):
                problems.append(f"{route}: content type {got_type!r}")
            elif route == "json" and json.loads(got) != {"message": "Hello, World!"}:
                problems.append(f"{route}: body {got[:60]!r}")
            elif want is not None and got != want:
                problems.append(f"{route}: body of {len(got)} bytes differs")
        except (OSError, http.client.HTTPException, ValueError) as error:
            problems.append(f"{route}: {type(error).__name__}: {error}")
        finally:
            connection.close()
    return "; ".join(problems)


# ---------------------------------------------------------------- wrk

ECHO_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", {size})
"""


def wrk(
    server: Server, route: str, seconds: float, connections: int, lua: Path
) -> tuple[str, dict]:
    command = [
        "taskset",
        "-c",
        CLIENT_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
    ]
    command += ["--timeout", "5s"]
    if route == "echo":
        command += ["-s", str(lua)]
    command.append(f"http://127.0.0.1:{server.port}{ROUTE_PATHS[route]}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    return result.stdout + result.stderr, parse_wrk(result.stdout)


def to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict:
    stats = {"rps": 0.0, "p99_ms": None, "non2xx": 0, "socket_errors": 0, "requests": 0}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        stats["rps"] = float(match.group(1))
    if match := re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
        stats["p99_ms"] = to_ms(match.group(1), match.group(2))
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        stats["non2xx"] = int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        stats["socket_errors"] = sum(int(group) for group in match.groups())
    if match := re.search(r"(\d+) requests in", output):
        stats["requests"] = int(match.group(1))
    return stats


# ---------------------------------------------------------------- report


def version_of(name: str) -> str:
    try:
        if name == "godottpd-baseline":
            return "another build (--baseline)"
        if name in ("godottpd", "godottpd-inline"):
            code = "import godottpd; print(godottpd.__version__)"
            env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env
            )
            commit = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
            )
            return f"{out.stdout.strip()} ({commit.stdout.strip()})"
        if name == "http.server":
            return f"CPython {platform.python_version()}"
        if name == "nginx":
            out = subprocess.run(
                [shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True, text=True
            )
            return out.stderr.strip().split("/")[-1]
        if name == "uvicorn":
            from importlib.metadata import version

            extras = f"httptools {version('httptools')}, uvloop {version('uvloop')}"
            return f"{version('uvicorn')} ({extras})"
        from importlib.metadata import version

        return version(name)
    except Exception as error:
        return f"? ({error})"


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s+(.+)", lscpu)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "?",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout + wrk_version.stderr).strip().splitlines()[0]
        if wrk_version
        else "?",
    }


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def markdown(results: dict) -> str:
    lines = []
    meta = results["meta"]
    lines.append(
        f"Run {meta['date']}: {meta['runs']} runs x {meta['duration']} s per route "
        f"after a {meta['warmup']} s"
    )
    lines.append(
        f"warm-up, `wrk -t1 -c{meta['connections']}` on core {CLIENT_CORE}, "
        f"each server on core {SERVER_CORE};"
    )
    lines.append(
        "median of the runs. Errors: non-2xx/3xx responses plus socket errors, "
        "summed over the runs."
    )
    lines.append("Peak RSS: highest sampled VmRSS of the server's process tree during the route.")
    lines.append(
        "Ratios are to the best Python peer of the same route in the same run (and to nginx)."
    )
    lines.append("")
    for route in ROUTES:
        rows = results["routes"].get(route)
        if not rows:
            continue
        lines.append(f"### {ROUTE_LABELS[route]}")
        lines.append("")
        lines.append(
            "| server | req/s | vs best Python peer | vs nginx | p99 latency | errors | peak RSS |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for row in sorted(rows, key=lambda r: -r["rps"]):
            p99 = "" if row["p99_ms"] is None else f"{row['p99_ms']:.2f} ms"
            lines.append(
                f"| {row['server']} | {row['rps']:,.0f} | {fmt_ratio(row['vs_best_python'])} | "
                f"{fmt_ratio(row['vs_nginx'])} | {p99} | {row['errors']} | "
                f"{row['peak_rss_kib'] / 1024:.1f} MiB |"
            )
        lines.append("")
    if results["not_timed"]:
        lines.append("Not timed:")
        lines.append("")
        for name, why in results["not_timed"].items():
            lines.append(f"- {name}: {why}")
        lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    lines.append("")
    m = results["machine"]
    lines.append(
        f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['wrk']}."
    )
    load = meta.get("load_average")
    if load:
        lines.append("")
        lines.append(
            f"Load average (1 min) of the machine before and after the run: {load[0]}, {load[1]} "
            "(other work shares it; on a quiet machine every figure is higher, the ratios "
            "within one run are what compare)."
        )
    notes = [f"{name}: {note}" for name, note in results["notes"].items() if note]
    if notes:
        lines.append("")
        lines.append("Notes: " + "; ".join(notes) + ".")
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = [
        s
        for s in ALL_SERVERS
        if any(r["server"] == s for rows in results["routes"].values() for r in rows)
    ]
    routes = [route for route in ROUTES if results["routes"].get(route)]
    fig, axes = plt.subplots(1, len(routes), figsize=(4 * len(routes), 4.2))
    axes = [axes] if len(routes) == 1 else list(axes)
    colors = {
        "godottpd": "#d62728",
        "godottpd-inline": "#ff7f0e",
        "godottpd-baseline": "#ff9896",
        "granian": "#1f77b4",
        "socketify": "#2ca02c",
        "uvicorn": "#9467bd",
        "http.server": "#8c564b",
        "nginx": "#7f7f7f",
    }
    for ax, route in zip(axes, routes):
        by_server = {row["server"]: row["rps"] for row in results["routes"][route]}
        names = [s for s in servers if s in by_server]
        values = [by_server[s] / 1000 for s in names]
        bars = ax.bar(names, values, color=[colors[s] for s in names])
        ax.bar_label(
            bars, labels=[f"{v:.0f}k" if v >= 10 else f"{v:.1f}k" for v in values], fontsize=8
        )
        ax.set_title(ROUTE_LABELS[route], fontsize=10)
        ax.set_ylabel("requests/s (thousands)" if ax is axes[0] else "")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.margins(y=0.15)
    meta = results["meta"]
    fig.suptitle(
        f"One server core, wrk -t1 -c{meta['connections']} on the other; "
        f"median of {meta['runs']} x {meta['duration']} s",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run (default 5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="seconds of warm-up per server and route (default 2)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="timed runs per server and route; the median counts"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="comma-separated, of: " + ", ".join(DEFAULT_SERVERS),
    )
    parser.add_argument(
        "--routes", default=",".join(ROUTES), help="comma-separated, of: " + ", ".join(ROUTES)
    )
    parser.add_argument("--no-install", action="store_true", help="skip pip/apt installs")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also time 'godottpd-baseline': the godottpd package found in this directory "
        "(a copy of python/ with another build of the extension), to compare two builds",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results directory (default benches/results)"
    )
    parser.add_argument(
        "--prefix", default="load", help="file name prefix of the results (default load)"
    )
    args = parser.parse_args()

    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    for name in names:
        if name not in ALL_SERVERS:
            parser.error(f"unknown server {name!r}")
    for route in routes:
        if route not in ROUTES:
            parser.error(f"unknown route {route!r}")
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed")

    if args.baseline and "godottpd-baseline" not in names:
        names.insert(1, "godottpd-baseline")
    not_timed = {} if args.no_install else install(names)
    if args.no_install and not shutil.which("wrk"):
        sys.exit("wrk is not installed")
    for name, why in not_timed.items():
        log(f"{name}: not timed: {why}")

    tmp = Path(tempfile.mkdtemp(prefix="godottpd-bench-"))
    static_dir = tmp / "static"
    static_dir.mkdir()
    static_data = bytes((i * 31 + 7) % 251 for i in range(STATIC_SIZE))
    (static_dir / "file.bin").write_bytes(static_data)
    echo_body = b"x" * ECHO_SIZE
    lua = tmp / "echo.lua"
    lua.write_text(ECHO_LUA.format(size=ECHO_SIZE))

    servers: list[Server] = []
    raw: list[str] = []
    load_before = os.getloadavg()[0]
    try:
        for name in names:
            if name in not_timed:
                continue
            server = build_server(name, static_dir, tmp, args.baseline)
            server.routes = [r for r in server.routes if r in routes]
            start(server, tmp)
            if not server.failure:
                server.failure = check(server, static_data, echo_body)
            if server.failure:
                log(f"{name}: FAILED, not timed: {server.failure}")
                not_timed[name] = server.failure
                stop(server)
                continue
            log(f"{name}: listening on {server.port}, answers checked")
            servers.append(server)
        if not servers:
            sys.exit("no server to time")

        samples: dict[tuple[str, str], list[dict]] = {}
        for route in routes:
            active = [s for s in servers if route in s.routes]
            for server in active:
                assert server.process is not None
                with RssSampler(server.process.pid) as sampler:
                    output, _ = wrk(server, route, args.warmup, args.connections, lua)
                server.peak_rss_kib[route] = sampler.peak
                raw.append(f"==== {server.name} {route} warm-up\n{output}")
            for run in range(args.runs):
                for server in active:
                    assert server.process is not None
                    if server.process.poll() is not None:
                        continue
                    with RssSampler(server.process.pid) as sampler:
                        output, stats = wrk(server, route, args.duration, args.connections, lua)
                    server.peak_rss_kib[route] = max(
                        server.peak_rss_kib.get(route, 0), sampler.peak
                    )
                    raw.append(f"==== {server.name} {route} run {run + 1}\n{output}")
                    samples.setdefault((server.name, route), []).append(stats)
                    p99 = stats["p99_ms"]
                    p99_text = f"{p99:.2f} ms" if p99 is not None else "?"
                    log(
                        f"{route:9} run {run + 1}/{args.runs} {server.name:11} "
                        f"{stats['rps']:>11,.0f} req/s  p99 {p99_text}"
                    )
        for server in servers:
            assert server.process is not None
            if server.process.poll() is not None:
                not_timed.setdefault(server.name, f"died during the run: {tail(server.log_path)}")
    finally:
        for server in servers:
            stop(server)
            output = tail(server.log_path, 20)
            raw.append(f"==== {server.name} server output (last lines)\n{output}")

    results: dict = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "runs": args.runs,
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "command": " ".join(["python", "benches/load/run.py", *sys.argv[1:]]),
        },
        "machine": machine(),
        "versions": {
            s: version_of(s) for s in names if s not in not_timed or s in [x.name for x in servers]
        },
        "not_timed": not_timed,
        "notes": {s.name: s.note for s in servers},
        "routes": {},
    }
    godottpd_log = next((s.log_path for s in servers if s.name == "godottpd"), None)
    if godottpd_log and godottpd_log.exists():
        results["notes"]["godottpd"] = (
            godottpd_log.read_text().strip().splitlines()[0] if godottpd_log.read_text() else ""
        )
    for route in routes:
        rows = []
        for server in servers:
            runs = samples.get((server.name, route))
            if not runs:
                continue
            p99s = [r["p99_ms"] for r in runs if r["p99_ms"] is not None]
            rows.append(
                {
                    "server": server.name,
                    "rps": statistics.median(r["rps"] for r in runs),
                    "rps_runs": [r["rps"] for r in runs],
                    "p99_ms": statistics.median(p99s) if p99s else None,
                    "errors": sum(r["non2xx"] + r["socket_errors"] for r in runs),
                    "peak_rss_kib": server.peak_rss_kib.get(route, 0),
                }
            )
        best_python = max((r["rps"] for r in rows if r["server"] in PYTHON_PEERS), default=None)
        nginx = next((r["rps"] for r in rows if r["server"] == "nginx"), None)
        for row in rows:
            row["vs_best_python"] = row["rps"] / best_python if best_python else None
            row["vs_nginx"] = row["rps"] / nginx if nginx else None
        if rows:
            results["routes"][route] = rows

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.prefix}-raw.txt").write_text("\n".join(raw))
    (args.out / f"{args.prefix}-results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / f"{args.prefix}-results.md").write_text(table)
    try:
        chart(results, args.out / f"{args.prefix}-chart.png")
    except ImportError as error:
        log(f"no chart: {error}")
    print()
    print(table)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
