"""Load benchmark: godottpd against the Python servers people choose, and nginx.

One command, from the repository root, inside a virtual environment (the harness installs
its Python peers with ``sys.executable -m pip``, so into the interpreter that runs it; it
refuses to pip-install into an interpreter that is not a venv unless ``--pip-global``):

    python benches/load/run.py              # every shape, 3 runs x 5 s, about 20 minutes
    python benches/load/run.py --quick      # smoke test: 1 run x 2 s, about 4 minutes
    python benches/load/run.py --duration 2 --runs 1 --servers godottpd,uvicorn \\
        --shapes plaintext,pipelined

It installs what it needs (pip: granian, socketify, uvicorn[standard], matplotlib; apt:
wrk, nginx-light, libuv1, linux-perf), builds nothing: godottpd is imported from
``python/`` (build it first: ``cargo build --release && cp target/release/libgodottpd.so
python/godottpd/_godottpd.abi3.so``). Each server is one process (its process tree for
granian), pinned to core 0 with taskset; wrk runs pinned to core 1. Every server is checked
for correct answers with a real HTTP client first (and for 16 pipelined answers on one
socket); one that fails is reported, not timed.

Shapes (``--shapes``): the four routes at 64 connections (plaintext, json, echo, static),
``headers`` (a handler reading ``request.headers`` and ``request.query``, sent the 20
browser-like headers), ``browser`` (plaintext with the 20 browser-like headers),
``pipelined`` (plaintext, 16 requests per write, as TechEmpower's plaintext test),
``c1`` and ``c1024`` (plaintext at 1 and 1,024 connections).

Figures per server and shape, each the median of the runs: requests/s, p50 and p99
latency, the server's CPU time per request (utime+stime from /proc/PID/stat, all threads,
summed over the process tree, over exactly the wrk window), instructions per request
(``perf stat -e instructions -p PID`` over the window; "n/a" where the machine has no such
counter), the load generator's own CPU share (wrk's rusage over its wall time) and the
server's. Where wrk sits at 90 % or more of its core, requests/s is wrk's ceiling, not the
server's: that shape's table is ranked by CPU time per request and says so. Every figure
is printed with its ratio to godottpd's (the server's figure / godottpd's), and the
targets of issue 14 are evaluated into a pass/miss list with the margins.

Runs are interleaved (for each shape, for each run, every server in turn) so that noise from
other work on the machine spreads over all servers alike; compare the ratios within one run.
Results go to benches/results/: PREFIX-raw.txt (every wrk and perf output),
PREFIX-results.json, PREFIX-results.md (the tables and the targets) and PREFIX-chart.png;
PREFIX is ``load`` (``quick`` with ``--quick``).

``--baseline DIR`` also times ``godottpd-baseline``: the godottpd package found in DIR (a
copy of ``python/`` holding another build of the extension), side by side with this one.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import re
import resource
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
PIPELINE_DEPTH = 16
PERF_EVENT = "instructions"
WRK_SATURATED = 0.90  # wrk's CPU share of its core from which it, not the server, is the limit
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

ROUTES = ["plaintext", "json", "echo", "static", "headers"]
QUERY = "id=42&q=hello&page=3&sort=asc"
ROUTE_PATHS = {
    "plaintext": "/plaintext",
    "json": "/json",
    "echo": "/echo",
    "static": "/static/file.bin",
    "headers": f"/headers?{QUERY}",
}

# 20 header fields as a browser sends them: Host (wrk's own) and these 19.
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9,fr;q=0.8",
    "Accept-Encoding": "gzip, deflate, br, zstd",
    "Connection": "keep-alive",
    "Upgrade-Insecure-Requests": "1",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "same-origin",
    "Sec-Fetch-User": "?1",
    "Sec-CH-UA": '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    "Sec-CH-UA-Mobile": "?0",
    "Sec-CH-UA-Platform": '"Linux"',
    "Cache-Control": "max-age=0",
    "Referer": "http://127.0.0.1/index.html",
    "Cookie": "session=6f1c2a9b8e7d4c3b2a1f0e9d8c7b6a5f; theme=dark; consent=yes",
    "DNT": "1",
    "Priority": "u=0, i",
    "If-None-Match": '"5e1f2a-3c4d"',
}
HEADERS_BODY = "|".join(
    (BROWSER_HEADERS["User-Agent"], BROWSER_HEADERS["Accept-Language"], "42", "hello")
).encode()


@dataclass(frozen=True)
class Shape:
    name: str
    label: str
    route: str
    connections: int | None = None  # None: --connections (64)
    script: str | None = None  # "echo", "browser" or "pipeline"


SHAPES = [
    Shape("plaintext", "GET /plaintext", "plaintext"),
    Shape("json", "GET /json", "json"),
    Shape("echo", "POST /echo (1 KiB)", "echo", script="echo"),
    Shape("static", "GET /static/file.bin (100 KiB)", "static"),
    Shape(
        "headers",
        "GET /headers?... (handler reads request.headers and request.query; 20 headers)",
        "headers",
        script="browser",
    ),
    Shape("browser", "GET /plaintext with 20 browser-like headers", "plaintext", script="browser"),
    Shape(
        "pipelined",
        f"GET /plaintext, {PIPELINE_DEPTH} pipelined requests per write",
        "plaintext",
        script="pipeline",
    ),
    Shape("c1", "GET /plaintext", "plaintext", connections=1),
    Shape("c1024", "GET /plaintext", "plaintext", connections=1024),
]
SHAPE_BY_NAME = {shape.name: shape for shape in SHAPES}
# "Every route" of the targets: the routes at the default connection count, one request per
# write (the pipelined and 1- and 1,024-connection shapes have targets of their own).
ROUTE_SHAPES = ["plaintext", "json", "echo", "static", "headers", "browser"]

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
GODOTTPD_VARIANTS = ["godottpd", "godottpd-inline", "godottpd-baseline"]
# Those the targets compare godottpd (the default mode) with: every server not godottpd.
PEERS = [name for name in ALL_SERVERS if name not in GODOTTPD_VARIANTS]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- installation


def in_venv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def pip_install(requirement: str, allow_global: bool) -> bool:
    if not in_venv() and not allow_global:
        log(
            f"not in a virtual environment: not pip-installing {requirement} into "
            f"{sys.executable} (run from a venv, or pass --pip-global)"
        )
        return False
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        requirement,
    ]
    log(f"{sys.executable} -m pip install {requirement}")
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


def install(servers: list[str], allow_global: bool) -> dict[str, str]:
    """Installs what is missing. Returns the servers that cannot run, with why."""
    apt_needed = []
    if not shutil.which("wrk"):
        apt_needed.append("wrk")
    if not shutil.which("perf"):
        apt_needed.append("linux-perf")
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
            pip_install(requirement, allow_global)
    if "uvicorn" in servers and not (have_module("uvloop") and have_module("httptools")):
        pip_install("uvicorn[standard]", allow_global)
    if not have_module("matplotlib"):
        pip_install("matplotlib", allow_global)
    importlib.invalidate_caches()
    unavailable = {}
    for server, (module, _) in pip_needed.items():
        if server in servers and not have_module(module):
            unavailable[server] = f"{module} is not installed in {sys.prefix}"
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


def raise_fd_limit(needed: int) -> int:
    """Raises RLIMIT_NOFILE for this process and so for every child (servers and wrk)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(needed, min(hard, 65536)) if hard != resource.RLIM_INFINITY else max(needed, 65536)
    if soft >= want:
        return soft
    for new_hard in (max(hard, want), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def perf_probe() -> str | None:
    """None when ``perf stat -e instructions`` counts here; else why not."""
    if not shutil.which("perf"):
        return "perf is not installed"
    try:
        result = subprocess.run(
            ["perf", "stat", "-x", ",", "-e", "instructions", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"perf stat failed: {error}"
    for line in result.stderr.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2].startswith("instructions"):
            if fields[0].strip().isdigit():
                return None
            return f"perf stat -e instructions: {fields[0].strip()} (no hardware counter)"
    return f"perf stat -e instructions: {result.stderr.strip()[-200:] or 'no count'}"


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NGINX_CONF = """
worker_processes 1;
master_process off;
daemon off;
worker_rlimit_nofile 8192;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
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
        location = /headers {{
            default_type "text/plain; charset=utf-8";
            return 200 "$http_user_agent|$http_accept_language|$arg_id|$arg_q";
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
        server.routes = ["plaintext", "json", "static", "headers"]
        server.note = (
            "fixed strings from the config; headers: variables $http_user_agent, "
            "$http_accept_language, $arg_id, $arg_q; no echo (nginx has no native body echo); "
            "sendfile"
        )
    else:
        raise ValueError(name)
    return server


def start(server: Server, tmp: Path, timeout: float = 20.0) -> None:
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.failure = f"exited with {server.process.returncode}: {tail(server.log_path)}"
            return
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    server.failure = f"did not listen within {timeout:g} s: {tail(server.log_path)}"


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


def tree_pids(pid: int) -> list[int]:
    """A process and its descendants (granian runs its worker as a child process)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue  # the process has gone
        found.append(current)
        for task in tasks:
            # A thread may end between the listing and the read (http.server starts one
            # per connection): skip that thread, never the process.
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            stack.extend(int(child) for child in children if child.isdigit())
    return found


def tree_rss_kib(pid: int) -> int:
    """Sum of VmRSS over a process and its descendants."""
    total = 0
    for current in tree_pids(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
        total += int(match.group(1)) if match else 0
    return total


def process_cpu_ticks(pid: int) -> int:
    """utime + stime of one process, all its threads (live and exited), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3, the state
    return int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime


def tree_cpu_ticks(pid: int) -> dict[int, int]:
    """utime + stime per process of the tree, so that a window sums the same processes."""
    return {current: process_cpu_ticks(current) for current in tree_pids(pid)}


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU time the tree spent between two snapshots; a process new in `after` counts whole."""
    ticks = sum(value - before.get(pid, 0) for pid, value in after.items())
    return max(ticks, 0) / CLOCK_TICK


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
        "headers": ("GET", None, HEADERS_BODY, "text/plain"),
    }
    problems = []
    for route in server.routes:
        method, body, want, content_type = expected[route]
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
            if route == "headers":
                headers = dict(BROWSER_HEADERS)
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
                problems.append(f"{route}: body of {len(got)} bytes differs: {got[:80]!r}")
        except (OSError, http.client.HTTPException, ValueError) as error:
            problems.append(f"{route}: {type(error).__name__}: {error}")
        finally:
            connection.close()
    if "plaintext" in server.routes:
        problem = check_pipelined(server.port)
        if problem:
            problems.append(f"pipelined: {problem}")
    return "; ".join(problems)


def check_pipelined(port: int) -> str:
    """Sends PIPELINE_DEPTH plaintext requests in one write; expects as many answers."""
    request = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * PIPELINE_DEPTH
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            deadline = time.monotonic() + 5
            while received.count(b"Hello, World!") < PIPELINE_DEPTH:
                if time.monotonic() > deadline:
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    answers = received.count(b"HTTP/1.1 200")
    if answers != PIPELINE_DEPTH or received.count(b"Hello, World!") != PIPELINE_DEPTH:
        return f"{answers} answers of {PIPELINE_DEPTH}"
    return ""


# ---------------------------------------------------------------- wrk and the figures

ECHO_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", {size})
"""

# As TechEmpower's pipeline.lua: one write carries `depth` requests; wrk counts each answer.
PIPELINE_LUA = """init = function(args)
  local r = {{}}
  for i = 1, {depth} do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
"""


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_scripts(tmp: Path) -> dict[str, Path]:
    scripts = {
        "echo": ECHO_LUA.format(size=ECHO_SIZE),
        "pipeline": PIPELINE_LUA.format(depth=PIPELINE_DEPTH),
        "browser": "".join(
            f"wrk.headers[{lua_string(name)}] = {lua_string(value)}\n"
            for name, value in BROWSER_HEADERS.items()
        ),
    }
    paths = {}
    for name, text in scripts.items():
        path = tmp / f"{name}.lua"
        path.write_text(text)
        paths[name] = path
    return paths


class Perf:
    """``perf stat -e instructions`` attached to the server's processes for one window."""

    def __init__(self, pids: list[int], output: Path):
        self.output = output
        self.process = subprocess.Popen(
            [
                "taskset",
                "-c",
                CLIENT_CORE,
                "perf",
                "stat",
                "-x",
                ",",
                "-e",
                PERF_EVENT,
                "-o",
                str(output),
                "-p",
                ",".join(str(pid) for pid in pids),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.15)  # perf attaches to every thread before the window opens

    def finish(self) -> tuple[int | None, str]:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        for line in text.splitlines():
            fields = line.split(",")
            if len(fields) >= 3 and fields[2].startswith(PERF_EVENT):
                try:  # "<not supported>" or "<not counted>" where there is no counter
                    return float(fields[0]), text
                except ValueError:
                    return None, text
        return None, text


def wrk(
    server: Server,
    shape: Shape,
    seconds: float,
    connections: int,
    scripts: dict[str, Path],
    tmp: Path,
    perf: bool,
) -> tuple[str, dict]:
    """One wrk run, and the server's CPU (and instructions) over exactly its window."""
    assert server.process is not None
    command = [
        "taskset",
        "-c",
        CLIENT_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if shape.script:
        command += ["-s", str(scripts[shape.script])]
    command.append(f"http://127.0.0.1:{server.port}{ROUTE_PATHS[shape.route]}")
    out_path = tmp / "wrk.out"
    pids = tree_pids(server.process.pid)
    counter = Perf(pids, tmp / "perf.out") if perf else None
    with out_path.open("wb") as out:
        before = tree_cpu_ticks(server.process.pid)
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        killer = threading.Timer(seconds + 30, process.kill)
        killer.start()
        try:
            # wait4 gives wrk's own rusage: its CPU share tells when wrk is the ceiling.
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        elapsed = time.monotonic() - started
        after = tree_cpu_ticks(server.process.pid)
        process.returncode = os.waitstatus_to_exitcode(status)
    instructions, perf_text = counter.finish() if counter else (None, "")
    if counter and instructions is None:
        log(f"perf counted nothing for {server.name}: {perf_text.strip()[-120:]}")
    output = out_path.read_text(errors="replace")
    stats = parse_wrk(output)
    server_cpu = cpu_seconds_between(before, after)
    requests = stats["requests"]
    # A server that answered must have used CPU: no ticks means the process could not be
    # read (it is reported as unmeasured, never as free).
    measured = bool(before) and bool(after) and server_cpu > 0
    stats.update(
        {
            "window_s": elapsed,
            "server_cpu_s": server_cpu,
            "server_cpu_share": server_cpu / elapsed if elapsed and measured else None,
            "wrk_cpu_share": (usage.ru_utime + usage.ru_stime) / elapsed if elapsed else None,
            "cpu_us_per_req": server_cpu * 1e6 / requests if requests and measured else None,
            "instructions": instructions,
            "instr_per_req": instructions / requests if instructions and requests else None,
        }
    )
    if perf_text.strip():
        output += "\nperf stat:\n" + perf_text.strip() + "\n"
    output += (
        f"\nwindow {elapsed:.3f} s; server CPU {server_cpu:.2f} s over {len(after)} process(es)"
        f" ({fmt_share(stats['server_cpu_share'])} of a core); wrk CPU"
        f" {fmt_share(stats['wrk_cpu_share'])}\n"
    )
    return output, stats


def to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict:
    stats: dict = {
        "rps": 0.0,
        "p50_ms": None,
        "p99_ms": None,
        "non2xx": 0,
        "socket_errors": 0,
        "requests": 0,
    }
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        stats["rps"] = float(match.group(1))
    for percent, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if match := re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
            # wrk prints 0.00us where its percentile lookup fails (seen when pipelining).
            value = to_ms(match.group(1), match.group(2))
            stats[key] = value if value > 0 else None
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        stats["non2xx"] = int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        stats["socket_errors"] = sum(int(group) for group in match.groups())
    if match := re.search(r"(\d+) requests in", output):
        stats["requests"] = int(match.group(1))
    return stats


def median_of(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(server: str, runs: list[dict], peak_rss_kib: int) -> dict:
    return {
        "server": server,
        "rps": median_of(runs, "rps") or 0.0,
        "rps_runs": [run["rps"] for run in runs],
        "p50_ms": median_of(runs, "p50_ms"),
        "p99_ms": median_of(runs, "p99_ms"),
        "cpu_us_per_req": median_of(runs, "cpu_us_per_req"),
        "cpu_us_per_req_runs": [run["cpu_us_per_req"] for run in runs],
        "instr_per_req": median_of(runs, "instr_per_req"),
        "wrk_cpu_share": median_of(runs, "wrk_cpu_share"),
        "wrk_cpu_share_max": max((run["wrk_cpu_share"] or 0.0) for run in runs),
        "server_cpu_share": median_of(runs, "server_cpu_share"),
        "errors": sum(run["non2xx"] + run["socket_errors"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
        "peak_rss_kib": peak_rss_kib,
    }


# ---------------------------------------------------------------- targets


def shape_saturated(rows: list[dict]) -> float | None:
    """wrk's highest median CPU share in a shape, when it reaches WRK_SATURATED; else None."""
    top = max((row["wrk_cpu_share"] or 0.0 for row in rows), default=0.0)
    return top if top >= WRK_SATURATED else None


def target(
    name: str, shape: str, ratio: float | None, threshold: float, direction: str, detail: str
) -> dict:
    if ratio is None:
        return {
            "target": name,
            "shape": shape,
            "verdict": "n/a",
            "ratio": None,
            "threshold": threshold,
            "direction": direction,
            "margin": None,
            "detail": detail,
        }
    passed = ratio >= threshold if direction == ">=" else ratio <= threshold
    margin = ratio / threshold - 1 if direction == ">=" else (threshold / ratio - 1 if ratio else 0)
    return {
        "target": name,
        "shape": shape,
        "verdict": "pass" if passed else "miss",
        "ratio": ratio,
        "threshold": threshold,
        "direction": direction,
        "margin": margin,
        "detail": detail,
    }


def evaluate_targets(results: dict) -> list[dict]:
    """Issue 14's targets for godottpd in the default mode, as ratios within this run."""
    out: list[dict] = []
    by_shape = {
        shape: {row["server"]: row for row in rows} for shape, rows in results["shapes"].items()
    }

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def saturation_note(shape: str) -> str:
        top = shape_saturated(list(by_shape[shape].values()))
        return f"; wrk at {top:.0%} of its core: req/s is wrk's ceiling here" if top else ""

    for shape, rows in by_shape.items():
        if shape not in ROUTE_SHAPES:
            continue
        gd = rows.get("godottpd")
        python = [row for name, row in rows.items() if name in PYTHON_PEERS]
        if not gd or not python:
            continue
        best = max(python, key=lambda row: row["rps"])
        out.append(
            target(
                "req/s >= 1.3x the best Python peer",
                shape,
                ratio(gd["rps"], best["rps"]),
                1.3,
                ">=",
                f"godottpd {gd['rps']:,.0f} vs {best['server']} {best['rps']:,.0f}"
                + saturation_note(shape),
            )
        )
        with_cpu = [row for row in python if row["cpu_us_per_req"] is not None]
        if with_cpu:
            best = min(with_cpu, key=lambda row: row["cpu_us_per_req"])
            out.append(
                target(
                    "CPU/req: the best Python peer's >= 1.3x godottpd's",
                    shape,
                    ratio(best["cpu_us_per_req"], gd["cpu_us_per_req"]),
                    1.3,
                    ">=",
                    f"{best['server']} {fmt_us(best['cpu_us_per_req'])} vs godottpd "
                    f"{fmt_us(gd['cpu_us_per_req'])}",
                )
            )
    for shape in ("plaintext", "json"):
        rows = by_shape.get(shape, {})
        gd, nginx = rows.get("godottpd"), rows.get("nginx")
        if gd and nginx:
            out.append(
                target(
                    "CPU/req within 1.05x of nginx's",
                    shape,
                    ratio(gd["cpu_us_per_req"], nginx["cpu_us_per_req"]),
                    1.05,
                    "<=",
                    f"godottpd {fmt_us(gd['cpu_us_per_req'])} vs nginx "
                    f"{fmt_us(nginx['cpu_us_per_req'])}",
                )
            )
    rows = by_shape.get("pipelined", {})
    gd, socketify = rows.get("godottpd"), rows.get("socketify")
    if gd and socketify:
        cpu = ratio(socketify["cpu_us_per_req"], gd["cpu_us_per_req"])
        cpu_text = f"; CPU/req socketify/godottpd {cpu:.2f}x" if cpu else ""
        out.append(
            target(
                "pipelined req/s >= 1.1x socketify's",
                "pipelined",
                ratio(gd["rps"], socketify["rps"]),
                1.1,
                ">=",
                f"godottpd {gd['rps']:,.0f} vs socketify {socketify['rps']:,.0f}"
                + saturation_note("pipelined")
                + cpu_text,
            )
        )
    rows = by_shape.get("c1", {})
    gd = rows.get("godottpd")
    for peer in ("socketify", "nginx"):
        other = rows.get(peer)
        if not gd or not other:
            continue
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            out.append(
                target(
                    f"1-connection {label} no worse than {peer}'s",
                    "c1",
                    ratio(gd[key], other[key]),
                    1.0,
                    "<=",
                    f"godottpd {fmt_latency(gd[key])} vs {peer} {fmt_latency(other[key])}",
                )
            )
    for shape in ("c1", "plaintext", "c1024"):
        rows = by_shape.get(shape, {})
        gd = rows.get("godottpd")
        peers = [row for name, row in rows.items() if name in PEERS and row["p99_ms"] is not None]
        if not gd or not peers:
            continue
        best = min(peers, key=lambda row: row["p99_ms"])
        connections = results["meta"]["shape_connections"][shape]
        out.append(
            target(
                f"p99 at {connections:,} connection{'' if connections == 1 else 's'} "
                "no worse than the best peer's",
                shape,
                ratio(gd["p99_ms"], best["p99_ms"]),
                1.0,
                "<=",
                f"godottpd {fmt_latency(gd['p99_ms'])} vs {best['server']} "
                f"{fmt_latency(best['p99_ms'])}",
            )
        )
    return out


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


def fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} µs"


def fmt_latency(ms: float | None) -> str:
    if ms is None:
        return "?"
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.2f} ms"


def fmt_count(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1000:.1f}k" if value >= 10000 else f"{value:,.0f}"


def fmt_share(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def ordered_rows(rows: list[dict]) -> tuple[list[dict], float | None]:
    saturated = shape_saturated(rows)
    if saturated:
        big = float("inf")
        key = lambda r: r["cpu_us_per_req"] if r["cpu_us_per_req"] is not None else big  # noqa: E731
        return sorted(rows, key=key), saturated
    return sorted(rows, key=lambda r: -r["rps"]), None


def markdown(results: dict) -> str:
    lines = []
    meta = results["meta"]
    if meta.get("quick"):
        lines.append(
            "**Smoke run (`--quick`): 1 short run per shape, not a measurement.** It shows "
            "that every shape and figure works; read no ranking into it."
        )
        lines.append("")
    lines.append(
        f"Run {meta['date']}: {meta['runs']} run(s) x {meta['duration']} s per shape after a "
        f"{meta['warmup']} s warm-up, `wrk -t1` on core {CLIENT_CORE}, each server on core "
        f"{SERVER_CORE}; median of the runs."
    )
    lines.append("")
    lines.append(
        "- **CPU/req**: the server's utime+stime (`/proc/PID/stat`, all threads, summed over "
        "its process tree) over exactly the wrk window, divided by the requests wrk "
        f"completed (clock tick {1000 // CLOCK_TICK} ms). **instr/req**: `perf stat -e "
        f"instructions` over the window: {meta['perf']}."
    )
    lines.append(
        "- **wrk CPU**: the load generator's CPU time over its wall time (its rusage). At "
        f"{WRK_SATURATED:.0%} or more wrk is the ceiling, requests/s no longer ranks the "
        "servers, and such a table is **ranked by CPU time per request** (marked). "
        "**server CPU**: the server's share of its core over the window."
    )
    lines.append(
        "- **x godottpd**: the server's figure divided by godottpd's (default mode) in the same "
        "shape: above 1 is more requests/s, more CPU per request, more latency. Errors: non-2xx "
        "plus socket errors, summed over the runs. Peak RSS: highest sampled VmRSS of the "
        "process tree."
    )
    lines.append("")
    for shape in SHAPES:
        rows = results["shapes"].get(shape.name)
        if not rows:
            continue
        connections = meta["shape_connections"][shape.name]
        rows, saturated = ordered_rows(rows)
        plural = "connection" if connections == 1 else "connections"
        lines.append(f"### {shape.name}: {shape.label}, {connections:,} {plural}")
        lines.append("")
        if shape.script == "pipeline":
            lines.append(
                f"*wrk records one latency sample per batch of {PIPELINE_DEPTH}, and its "
                "percentiles can fail here (shown as ?): read requests/s and CPU/req.*"
            )
            lines.append("")
        if saturated:
            lines.append(
                f"*wrk at up to {saturated:.0%} of its core: ranked by CPU time per request; "
                "requests/s here is the load generator's ceiling.*"
            )
            lines.append("")
        ref = next((row for row in rows if row["server"] == "godottpd"), None)

        def vs(row: dict, key: str, ref: dict | None = ref) -> str:
            if ref is None or row[key] is None or not ref[key]:
                return ""
            return fmt_ratio(row[key] / ref[key])

        lines.append(
            "| server | req/s | x godottpd | CPU/req | x godottpd | instr/req | p50 | p99 | "
            "x godottpd | wrk CPU | server CPU | errors | peak RSS |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            lines.append(
                f"| {row['server']} | {row['rps']:,.0f} | {vs(row, 'rps')} | "
                f"{fmt_us(row['cpu_us_per_req'])} | {vs(row, 'cpu_us_per_req')} | "
                f"{fmt_count(row['instr_per_req'])} | {fmt_latency(row['p50_ms'])} | "
                f"{fmt_latency(row['p99_ms'])} | {vs(row, 'p99_ms')} | "
                f"{fmt_share(row['wrk_cpu_share'])} | {fmt_share(row['server_cpu_share'])} | "
                f"{row['errors']} | {row['peak_rss_kib'] / 1024:.1f} MiB |"
            )
        lines.append("")
    targets = results.get("targets", [])
    if targets:
        passed = sum(1 for t in targets if t["verdict"] == "pass")
        missed = sum(1 for t in targets if t["verdict"] == "miss")
        lines.append(
            f"### Targets (issue 14), godottpd in the default mode: {passed} pass, {missed} miss"
        )
        lines.append("")
        lines.append("Margin: how far past the threshold (positive: headroom; negative: short by).")
        lines.append("")
        for t in targets:
            verdict = {"pass": "PASS", "miss": "MISS"}.get(t["verdict"], "n/a")
            if t["ratio"] is None:
                lines.append(f"- **{verdict}** {t['shape']}: {t['target']}: {t['detail']}")
                continue
            lines.append(
                f"- **{verdict}** {t['shape']}: {t['target']}: {t['ratio']:.2f}x "
                f"(target {t['direction']} {t['threshold']:.2f}x, margin "
                f"{t['margin'] * 100:+.1f} %): {t['detail']}"
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
        f"Python {m['python']}, {m['wrk']}; open files limit {meta['nofile']}."
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
    lines.append("")
    lines.append(f"Command: `{meta['command']}`")
    return "\n".join(lines) + "\n"


COLORS = {
    "godottpd": "#d62728",
    "godottpd-inline": "#ff7f0e",
    "godottpd-baseline": "#ff9896",
    "granian": "#1f77b4",
    "socketify": "#2ca02c",
    "uvicorn": "#9467bd",
    "http.server": "#8c564b",
    "nginx": "#7f7f7f",
}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = [shape for shape in SHAPES if results["shapes"].get(shape.name)]
    columns = min(3, len(shapes))
    rows_n = (len(shapes) + columns - 1) // columns
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.6 * columns, 3.9 * rows_n), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(shapes) :]:
        ax.axis("off")
    meta = results["meta"]
    for ax, shape in zip(flat, shapes):
        rows = {row["server"]: row for row in results["shapes"][shape.name]}
        names = [s for s in ALL_SERVERS if s in rows]
        values = [rows[s]["rps"] / 1000 for s in names]
        bars = ax.bar(names, values, color=[COLORS[s] for s in names])
        labels = []
        for s, v in zip(names, values):
            cpu = rows[s]["cpu_us_per_req"]
            text = f"{v:.0f}k" if v >= 10 else f"{v:.1f}k"
            labels.append(text + (f"\n{cpu:.1f}µs" if cpu is not None else ""))
        ax.bar_label(bars, labels=labels, fontsize=7)
        saturated = shape_saturated(list(rows.values()))
        title = f"{shape.name}, {meta['shape_connections'][shape.name]} conn."
        if saturated:
            title += f"\n(wrk at {saturated:.0%}: rank by CPU/req)"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("requests/s (thousands)", fontsize=8)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.margins(y=0.25)
    fig.suptitle(
        f"One server core, wrk -t1 on the other; median of {meta['runs']} x "
        f"{meta['duration']} s; bar labels: req/s and the server's CPU time per request",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 run x 2 s after a 1 s warm-up, results prefixed 'quick'",
    )
    parser.add_argument("--duration", type=int, help="seconds per timed run (default 5)")
    parser.add_argument(
        "--warmup", type=int, help="seconds of warm-up per server and shape (default 2)"
    )
    parser.add_argument(
        "--runs", type=int, help="timed runs per server and shape; the median counts (default 3)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="wrk connections of the shapes without their own count (default 64)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="comma-separated, of: " + ", ".join(DEFAULT_SERVERS),
    )
    parser.add_argument(
        "--shapes",
        "--routes",
        dest="shapes",
        default=",".join(shape.name for shape in SHAPES),
        help="comma-separated, of: " + ", ".join(shape.name for shape in SHAPES),
    )
    parser.add_argument("--no-install", action="store_true", help="skip pip/apt installs")
    parser.add_argument(
        "--pip-global",
        action="store_true",
        help="allow pip installs into an interpreter that is not a virtual environment",
    )
    parser.add_argument("--no-perf", action="store_true", help="do not count instructions")
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
        "--prefix", help="file name prefix of the results (default load; quick with --quick)"
    )
    args = parser.parse_args()
    quick = {"duration": 2, "warmup": 1, "runs": 1, "prefix": "quick"}
    full = {"duration": 5, "warmup": 2, "runs": 3, "prefix": "load"}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    shape_names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for name in names:
        if name not in ALL_SERVERS:
            parser.error(f"unknown server {name!r}")
    for shape_name in shape_names:
        if shape_name not in SHAPE_BY_NAME:
            parser.error(f"unknown shape {shape_name!r}")
    shapes = [shape for shape in SHAPES if shape.name in shape_names]
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed")
    if args.baseline:
        if not (args.baseline / "godottpd").is_dir():
            parser.error(f"--baseline {args.baseline}: no godottpd package in it")
        if "godottpd-baseline" not in names:
            names.insert(1, "godottpd-baseline")

    not_timed = {} if args.no_install else install(names, args.pip_global)
    if args.no_install and not shutil.which("wrk"):
        sys.exit("wrk is not installed")
    for name, why in not_timed.items():
        log(f"{name}: not timed: {why}")
    shape_connections = {shape.name: shape.connections or args.connections for shape in shapes}
    most = max(shape_connections.values(), default=args.connections)
    nofile = raise_fd_limit(2 * most + 256)
    log(f"open files limit (for the servers and wrk): {nofile}")
    if nofile < most + 64:
        for shape in list(shapes):
            if shape_connections[shape.name] + 64 > nofile:
                log(f"{shape.name}: skipped, the open files limit {nofile} is too low")
                shapes.remove(shape)
    perf_problem = "disabled (--no-perf)" if args.no_perf else perf_probe()
    perf = perf_problem is None
    perf_text = "counted" if perf else f"n/a here ({perf_problem})"
    log(f"instructions per request: {perf_text}")

    tmp = Path(tempfile.mkdtemp(prefix="godottpd-bench-"))
    static_dir = tmp / "static"
    static_dir.mkdir()
    static_data = bytes((i * 31 + 7) % 251 for i in range(STATIC_SIZE))
    (static_dir / "file.bin").write_bytes(static_data)
    echo_body = b"x" * ECHO_SIZE
    scripts = write_scripts(tmp)
    routes = {shape.route for shape in shapes}

    servers: list[Server] = []
    raw: list[str] = []
    load_before = os.getloadavg()[0]
    started_at = time.monotonic()
    samples: dict[tuple[str, str], list[dict]] = {}
    peaks: dict[tuple[str, str], int] = {}
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

        for shape in shapes:
            connections = shape_connections[shape.name]
            active = [s for s in servers if shape.route in s.routes]
            for server in active:
                assert server.process is not None
                with RssSampler(server.process.pid) as sampler:
                    output, _ = wrk(
                        server, shape, args.warmup, connections, scripts, tmp, perf=False
                    )
                peaks[(server.name, shape.name)] = sampler.peak
                raw.append(f"==== {server.name} {shape.name} warm-up\n{output}")
            for run in range(args.runs):
                for server in active:
                    assert server.process is not None
                    if server.process.poll() is not None:
                        continue
                    with RssSampler(server.process.pid) as sampler:
                        output, stats = wrk(
                            server, shape, args.duration, connections, scripts, tmp, perf
                        )
                    key = (server.name, shape.name)
                    peaks[key] = max(peaks.get(key, 0), sampler.peak)
                    raw.append(f"==== {server.name} {shape.name} run {run + 1}\n{output}")
                    samples.setdefault(key, []).append(stats)
                    log(
                        f"{shape.name:9} run {run + 1}/{args.runs} {server.name:15} "
                        f"{stats['rps']:>11,.0f} req/s  CPU/req "
                        f"{fmt_us(stats['cpu_us_per_req']):>9}  "
                        f"p50 {fmt_latency(stats['p50_ms']):>8}  "
                        f"p99 {fmt_latency(stats['p99_ms']):>8}  "
                        f"wrk {fmt_share(stats['wrk_cpu_share']):>4}  "
                        f"server {fmt_share(stats['server_cpu_share']):>4}"
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
            "quick": args.quick,
            "runs": args.runs,
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "shape_connections": shape_connections,
            "pipeline_depth": PIPELINE_DEPTH,
            "perf": perf_text,
            "nofile": nofile,
            "wrk_saturated_at": WRK_SATURATED,
            "elapsed_s": round(time.monotonic() - started_at, 1),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "command": " ".join(["python", "benches/load/run.py", *sys.argv[1:]]),
        },
        "machine": machine(),
        "versions": {
            s: version_of(s) for s in names if s not in not_timed or s in [x.name for x in servers]
        },
        "not_timed": not_timed,
        "notes": {s.name: s.note for s in servers},
        "shapes": {},
    }
    godottpd_log = next((s.log_path for s in servers if s.name == "godottpd"), None)
    if godottpd_log and godottpd_log.exists():
        text = godottpd_log.read_text()
        results["notes"]["godottpd"] = text.strip().splitlines()[0] if text.strip() else ""
    for shape in shapes:
        rows = [
            summarize(s.name, samples[(s.name, shape.name)], peaks.get((s.name, shape.name), 0))
            for s in servers
            if samples.get((s.name, shape.name))
        ]
        if rows:
            results["shapes"][shape.name] = rows
    results["targets"] = evaluate_targets(results)

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
    log(f"done in {results['meta']['elapsed_s']:.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
