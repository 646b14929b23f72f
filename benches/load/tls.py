"""HTTPS load benchmark: godottpd against nginx and granian, all with the same certificate.

Run from the repository root, in the virtual environment where godottpd is installed
(``pip install -e .``); granian is timed when it is importable (``pip install granian``),
nginx when ``nginx`` is on PATH (Debian's has TLS); ``wrk`` and ``openssl`` are needed:

    python benches/load/tls.py                 # 3 runs x 5 s per shape
    python benches/load/tls.py --duration 2 --runs 1

Shapes, each server pinned to core 0 and the client to core 1 (taskset):

- ``plaintext``: HTTPS keep-alive, ``GET /plaintext`` at 64 connections (wrk);
- ``static``: the same for a 100 KiB file (godottpd's HttpFileRouter, nginx's static
  module with sendfile off, as TLS needs, granian's handler from memory);
- ``handshake``: new connections per second, one HTTP/1.0 request each, full handshake
  (``openssl s_time -new``: TLS 1.3, ECDSA P-256 certificate, X25519);
- ``resumed``: the same with session resumption (``openssl s_time -reuse``);
- ``idle-rss``: the server's resident memory with 1,000 idle TLS connections open (after
  their handshakes), and its growth over the server at rest.

Runs are interleaved (for each shape, for each run, every server in turn) and the median
is kept; ratios are to nginx within the same run. Results: benches/results/tls-results.md
and tls-results.json. The targets of issue 9 (keep-alive plaintext >= 1.0x nginx,
handshakes/s >= 0.9x, static >= 0.8x) are evaluated into a pass/miss list.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # benches/load/run.py

RESULTS = harness.RESULTS
SERVER_CORE, CLIENT_CORE = harness.SERVER_CORE, harness.CLIENT_CORE
IDLE_CONNECTIONS = 1000

GODOTTPD_APP = """
import sys
from godottpd import HttpFileRouter, HttpRouter, HttpServer

class Plaintext(HttpRouter):
    def handle_get(self, request, response):
        response.send(200, "Hello, World!", "text/plain")

port, static, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
server = HttpServer(port=port, bind_address="127.0.0.1", handler_threads=0,
                    max_connections=4096, header_timeout=120.0, keepalive_timeout=120.0,
                    tls_cert=cert, tls_key=key)
server.register_router("/plaintext", Plaintext())
server.register_router("/static", HttpFileRouter(static))
server.serve_forever()
"""

GRANIAN_APP = """
import os
from pathlib import Path

STATIC = (Path(os.environ["BENCH_STATIC_DIR"]) / "file.bin").read_bytes()

async def app(scope, proto):
    if scope.path == "/plaintext":
        proto.response_bytes(200, [("content-type", "text/plain; charset=utf-8")], b"Hello, World!")
    elif scope.path == "/static/file.bin":
        proto.response_bytes(200, [("content-type", "application/octet-stream")], STATIC)
    else:
        proto.response_bytes(404, [], b"")
"""

NGINX_CONF = (
    harness.NGINX_HEAD
    + """    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_header_timeout 120s;
    server_tokens off;
    types {{ }}
    server {{
        listen 127.0.0.1:{port} ssl reuseport;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location = /plaintext {{
            default_type "text/plain; charset=utf-8";
            return 200 "Hello, World!";
        }}
        location /static/ {{ default_type application/octet-stream; alias {static}/; }}
    }}
}}
"""
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tls_server(name: str, command: list[str], port: int, env: dict | None = None) -> harness.Server:
    return harness.Server(name, [], command, env or {}, port)


def make_servers(tmp: Path, cert: str, key: str, static: Path) -> list[harness.Server]:
    servers = []
    app = tmp / "godottpd_tls_app.py"
    app.write_text(GODOTTPD_APP)
    port = harness.free_port()
    servers.append(
        tls_server("godottpd", [sys.executable, str(app), str(port), str(static), cert, key], port)
    )
    if shutil.which("nginx"):
        port = harness.free_port()
        folder = tmp / "nginx"
        folder.mkdir()
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=folder, port=port, cert=cert, key=key, static=static))
        servers.append(tls_server("nginx", ["nginx", "-p", str(folder), "-c", str(conf)], port))
    else:
        log("nginx not found: not timed")
    if importlib.util.find_spec("granian") is not None:
        port = harness.free_port()
        (tmp / "granian_tls_app.py").write_text(GRANIAN_APP)
        command = [
            sys.executable, "-m", "granian", "--interface", "rsgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--runtime-threads", "1", "--http", "1",
            "--no-ws", "--log-level", "warning", "--working-dir", str(tmp),
            "--ssl-certificate", cert, "--ssl-keyfile", key, "--ssl-protocol-min", "tls1.2",
            "granian_tls_app:app",
        ]  # fmt: skip
        servers.append(tls_server("granian", command, port, {"BENCH_STATIC_DIR": str(static)}))
    else:
        log("granian not importable: not timed (pip install granian)")
    return servers


def start(server: harness.Server, tmp: Path) -> None:
    """run.py's start (pinned to SERVER_CORE), then until an HTTPS answer comes back."""
    harness.start(server, tmp, timeout=30)
    if server.failure:
        return
    assert server.process is not None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.failure = f"exited with {server.process.returncode}"
            return
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
                with context.wrap_socket(sock) as tls:
                    tls.sendall(b"GET /plaintext HTTP/1.0\r\n\r\n")
                    if b"Hello, World!" in tls.recv(4096) + tls.recv(4096):
                        return
        except OSError:
            time.sleep(0.2)
    server.failure = "did not answer over HTTPS within 30 s"


def wrk(port: int, path: str, duration: float) -> float:
    command = harness.wrk_command(
        f"https://127.0.0.1:{port}{path}", 64, max(1, round(duration)), options=()
    )
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", result.stdout)
    if errors:
        log(f"  wrk on :{port}{path}: {errors.group(0)}")
    return harness.parse_wrk(result.stdout)["rps"]


def s_time(port: int, reuse: bool, duration: float) -> float:
    result = subprocess.run(
        harness.pinned(
            ["openssl", "s_time", "-connect", f"127.0.0.1:{port}",
             "-reuse" if reuse else "-new", "-time", str(int(max(1, duration))),
             "-www", "/plaintext"],
            CLIENT_CORE,
        ),
        capture_output=True, text=True, timeout=duration + 60, check=False,
    )  # fmt: skip
    match = re.search(r"(\d+) connections in ([\d.]+)s?\s*(?:real )?seconds", result.stdout)
    if not match:
        match = re.search(r"(\d+) connections in ([\d.]+) real seconds", result.stdout)
    if not match:
        log(f"  s_time on :{port}: no figure in {result.stdout[-300:]!r}")
        return 0.0
    return int(match.group(1)) / float(match.group(2))


def idle_rss(server: harness.Server) -> tuple[int, int]:
    """(RSS at rest, RSS with IDLE_CONNECTIONS idle TLS connections), in KiB."""
    assert server.process is not None
    rest = harness.tree_rss_kib(server.process.pid)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    held = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            held.append(context.wrap_socket(sock))
        time.sleep(0.5)
        loaded = harness.tree_rss_kib(server.process.pid)
    finally:
        for tls in held:
            tls.close()
    return rest, loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for tool in ("wrk", "openssl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    from godottpd import self_signed_certificate

    harness.raise_fd_limit(8192)
    tmp = Path(tempfile.mkdtemp(prefix="godottpd-tls-bench-"))
    static = tmp / "static"
    harness.static_file(static)
    cert, key = self_signed_certificate(folder=tmp / "cert")
    servers = make_servers(tmp, cert, key, static)
    figures: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    shapes = {
        "plaintext": lambda s: wrk(s.port, "/plaintext", args.duration),
        "static": lambda s: wrk(s.port, "/static/file.bin", args.duration),
        "handshake": lambda s: s_time(s.port, False, args.duration),
        "resumed": lambda s: s_time(s.port, True, args.duration),
    }
    try:
        for server in servers:
            start(server, tmp)
            if server.failure:
                log(f"{server.name}: {server.failure}")
        live = [s for s in servers if not s.failure]
        for shape, run in shapes.items():
            for number in range(args.runs):
                for server in live:
                    value = run(server)
                    figures[server.name].setdefault(shape, []).append(value)
                    log(f"{shape} run {number + 1}: {server.name} {value:,.0f}/s")
        rss: dict[str, tuple[int, int]] = {}
        for server in live:
            rss[server.name] = idle_rss(server)
            log(f"idle-rss: {server.name} {rss[server.name]}")
    finally:
        for server in servers:
            harness.stop(server)
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {
        name: {shape: statistics.median(values) for shape, values in shapes_.items()}
        for name, shapes_ in figures.items()
    }
    lines = [
        "# HTTPS load run",
        "",
        f"{args.runs} run(s) x {args.duration:g} s per shape; server on core {SERVER_CORE}, "
        f"client on core {CLIENT_CORE}; ECDSA P-256 self-signed certificate for all.",
        "",
        "| server | keep-alive plaintext req/s | static 100 KiB req/s | new connections/s "
        "(full handshake) | new connections/s (resumed) | RSS at rest | RSS, 1,000 idle TLS "
        "connections |",
        "|---|---|---|---|---|---|---|",
    ]
    nginx = medians.get("nginx", {})

    def cell(name: str, shape: str) -> str:
        value = medians.get(name, {}).get(shape, 0.0)
        ratio = f" ({value / nginx[shape]:.2f}x)" if nginx.get(shape) else ""
        return f"{value:,.0f}{ratio}"

    for name in medians:
        rest, loaded = rss.get(name, (0, 0))
        lines.append(
            f"| {name} | {cell(name, 'plaintext')} | {cell(name, 'static')} | "
            f"{cell(name, 'handshake')} | {cell(name, 'resumed')} | {rest / 1024:.1f} MiB | "
            f"{loaded / 1024:.1f} MiB (+{(loaded - rest) / IDLE_CONNECTIONS:.1f} KiB each) |"
        )
    targets = [("plaintext", 1.0), ("handshake", 0.9), ("static", 0.8)]
    lines += ["", "Targets (issue 9), godottpd / nginx:", ""]
    ours = medians.get("godottpd", {})
    for shape, goal in targets:
        if nginx.get(shape) and ours.get(shape):
            ratio = ours[shape] / nginx[shape]
            verdict = "pass" if ratio >= goal else "miss"
            lines.append(f"- {shape}: {ratio:.2f}x (target {goal:.1f}x): {verdict}")
        else:
            lines.append(f"- {shape}: not measured")
    report = "\n".join(lines) + "\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tls-results.md").write_text(report)
    summary = {"runs": args.runs, "duration": args.duration, "medians": medians, "idle_rss": rss}
    (RESULTS / "tls-results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
