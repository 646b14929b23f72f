"""SSE fan-out: 10,000 event streams fed by one publish loop, and the memory of 10,000 idle
ones; godottpd's ``EventHub`` against granian, socketify and uvicorn doing the same with
their own APIs (issue 10).

One command, from the repository root, in a venv with the peers installed (the bench
venv), after building the extension as run.py says:

    cargo build --release --example sse_clients
    python benches/load/sse_fanout.py                 # 10,000 clients, about 2 minutes
    python benches/load/sse_fanout.py --clients 1000 --seconds 3 --servers godottpd

For each server (one process, pinned to core 0 as run.py pins its servers; the servers'
code is in benches/load/servers/sse_*.py):

1. **Idle** (``--idle``, on by default): ``--clients`` connections (the client,
   benches/sse_clients.rs, one thread pinned to core 1) each send ``GET /events`` with
   ``Accept: text/event-stream`` and read the response head; nothing is published. After
   ``--settle`` seconds the server's VmRSS (summed over its process tree) and its VmHWM
   are read. Heartbeat off by default (``--heartbeat S`` turns it on for godottpd, granian
   and uvicorn; the socketify app sends none).
2. **Fan-out**, on the same connections: ``GET /start`` starts the server's one publish
   loop, which publishes fixed-size events (87 bytes, ``id:`` counting up) for
   ``--seconds``, as fast as it can (``--rate`` events a second per subscriber instead,
   e.g. ``--rate 0,100`` for both): godottpd ``hub.publish()`` in a loop on a Python
   thread; granian RSGI and uvicorn ASGI a ``put_nowait`` into every subscriber's asyncio
   queue, each subscriber's task sending what its queue gets; socketify ``res.write`` to
   every subscriber's response. A subscriber more than 256 KiB (``stream_buffer``) behind
   is dropped by godottpd, granian and uvicorn (their queues hold as many events);
   socketify has no such signal and buffers. Once the loop is done and the clients have
   received what they will, the figures:

   - **events delivered per second**: events received summed over all clients (counted
     by their ``\\n\\n``) over the time from the first to the last;
   - **server CPU per delivered event** (utime+stime from /proc/PID/stat, process tree,
     from ``/start`` to the end) and the client's own CPU share (that it is not the limit);
   - events published, events lost (published x clients connected at the start, minus
     those received), clients dropped (closed by the server), and for every 100th client
     whether its ids went up one by one (gaps, reorders);
   - peak RSS of the server during the window.

Each ratio is the peer's figure over godottpd's in the same run. RLIMIT_NOFILE is raised to
the hard limit for this process and so for the servers and the client (their children);
with fewer descriptors than ``--clients`` plus a margin the number of clients is cut down
and the actual number connected is printed. Results: benches/results/PREFIX-raw.txt,
PREFIX-results.json and PREFIX-results.md (PREFIX: ``sse-fanout``, ``--prefix``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # benches/load/run.py

REPO = harness.REPO
RESULTS = harness.RESULTS
SERVERS_DIR = harness.SERVERS_DIR
CLIENT = REPO / "target" / "release" / "examples" / "sse_clients"
ALL = ["godottpd", "granian", "socketify", "uvicorn"]
EVENT_SIZE = 87
FD_MARGIN = 64


def build_server(name: str, heartbeat: float) -> harness.Server:
    """run.py's Server, running benches/load/servers/sse_NAME.py."""
    port = harness.free_port()
    env = {"PYTHONDONTWRITEBYTECODE": "1", "SSE_HEARTBEAT": str(heartbeat)}
    python = sys.executable
    server = harness.Server(name=name, routes=[], port=port, env=env)
    if name == "godottpd":
        env["PYTHONPATH"] = str(REPO / "python")
        server.command = [python, str(SERVERS_DIR / "sse_godottpd.py"), str(port)]
    elif name == "socketify":
        server.command = [python, str(SERVERS_DIR / "sse_socketify.py"), str(port)]
    elif name == "granian":
        server.command = [
            *(python, "-m", "granian", "--interface", "rsgi", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", "1", "--runtime-threads", "1"),
            *("--http", "1", "--no-ws", "--log-level", "warning", "--backlog", "4096"),
            # Requests served at once: the backlog (4096) by default; every stream is one.
            *("--backpressure", "20000"),
            *("--working-dir", str(SERVERS_DIR), "sse_granian:app"),
        ]
    elif name == "uvicorn":
        server.command = [
            *(python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
            *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
            *("--log-level", "warning", "--backlog", "4096", "--timeout-keep-alive", "3600"),
            *("--app-dir", str(SERVERS_DIR), "sse_uvicorn:app"),
        ]
    else:
        raise ValueError(name)
    return server


def get_json(port: int, path: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        body = connection.getresponse().read()
    finally:
        connection.close()
    return json.loads(body) if body.startswith(b"{") else {"answer": body.decode()}


class Clients:
    """The client process (benches/sse_clients.rs), pinned to core 1, driven by stdin."""

    def __init__(self, port: int, count: int, raw: list[str]):
        self.raw = raw
        self.process = subprocess.Popen(
            ["taskset", "-c", harness.CLIENT_CORE, str(CLIENT), str(port), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.connected = self._line()

    def _line(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.raw.append(f"client: {line.strip()}")
        if not line:
            raise RuntimeError(f"the client ended ({self.process.wait()})")
        return json.loads(line)

    def command(self, word: str) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        return self._line() if word != "go" else {}

    def cpu(self) -> int:
        return harness.process_cpu_ticks(self.process.pid)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def status_kib(pid: int, field: str) -> int:
    """A /proc/PID/status field (VmRSS, VmHWM) summed over the process tree, in KiB."""
    total = 0
    for current in harness.tree_pids(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def wait_settled(clients: Clients, expected: int, timeout: float) -> dict:
    """Asks the client for its counts until every connected client has all `expected`
    events or the count stops moving for 3 seconds."""
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while True:
        snapshot = clients.command("stat")
        if snapshot["events"] != last:
            last, still_since = snapshot["events"], time.monotonic()
        done = snapshot["fewest"] >= expected and snapshot["closed"] == 0
        if done or time.monotonic() - still_since >= 3.0 or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.1)


def fan_out(server: harness.Server, clients: Clients, seconds: float, rate: float) -> dict:
    assert server.process is not None
    pid, port = server.process.pid, server.port
    start_connected = clients.command("stat")["connected"]
    clients.command("go")
    cpu_before, client_before = harness.tree_cpu_ticks(pid), clients.cpu()
    started = time.monotonic()
    with harness.RssSampler(pid) as rss:
        get_json(port, f"/start?seconds={seconds}&rate={rate}")
        time.sleep(seconds)  # the publish loop's window; then wait for it to say it is done
        deadline = time.monotonic() + seconds + 60
        while (stats := get_json(port, "/stats"))["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        snapshot = wait_settled(clients, stats["published"], 30)
    elapsed = time.monotonic() - started
    cpu = harness.cpu_seconds_between(cpu_before, harness.tree_cpu_ticks(pid))
    client_cpu = (clients.cpu() - client_before) / harness.CLOCK_TICK
    events = snapshot["events"]
    span = snapshot["span_s"]
    return {
        "rate": rate,
        "clients": start_connected,
        "published": stats["published"],
        "publish_seconds": round(stats["seconds"], 3),
        "published_per_s": stats["published"] / stats["seconds"] if stats["seconds"] else 0,
        "events": events,
        "span_s": span,
        "delivered_per_s": events / span if span else 0.0,
        "lost": stats["published"] * start_connected - events,
        "dropped": snapshot["closed"],
        "server_dropped": stats.get("dropped", 0),
        "fewest": snapshot["fewest"],
        "most": snapshot["most"],
        "sampled": snapshot["sampled"],
        "gaps": snapshot["gaps"],
        "reorders": snapshot["reorders"],
        "server_cpu_s": cpu,
        "cpu_ns_per_event": cpu / events * 1e9 if events else None,
        "server_cores": cpu / elapsed,
        "client_cpu_s": client_cpu,
        "client_share": client_cpu / span if span else None,
        "peak_rss_mib": rss.peak / 1024,
    }


def measure(name: str, arguments: argparse.Namespace, tmp: Path, raw: list[str]) -> dict:
    server = build_server(name, arguments.heartbeat)
    harness.start(server, tmp, timeout=60)
    result: dict = {"server": name}
    if server.failure:
        harness.stop(server)  # it may be running yet, only slow to listen
        result["failure"] = server.failure
        return result
    assert server.process is not None
    clients = None
    try:
        baseline = status_kib(server.process.pid, "VmRSS")
        started = time.monotonic()
        clients = Clients(server.port, arguments.clients, raw)
        result["connect_s"] = time.monotonic() - started
        result["connected"] = clients.connected["connected"]
        result["connect_failed"] = clients.connected["failed"]
        result["first_error"] = clients.connected["first_error"]
        time.sleep(arguments.settle)  # idle: nothing happens, so a wait is what is measured
        pid = server.process.pid
        result["idle"] = {
            "rss_before_mib": baseline / 1024,
            "rss_mib": status_kib(pid, "VmRSS") / 1024,
            "hwm_mib": status_kib(pid, "VmHWM") / 1024,
            "still_connected": clients.command("stat")["connected"],
        }
        idle = result["idle"]
        idle["per_stream_kib"] = (
            (idle["rss_mib"] - idle["rss_before_mib"]) * 1024 / result["connected"]
            if result["connected"]
            else None
        )
        raw.append(f"{name} idle: {json.dumps(result['idle'])}")
        result["fanout"] = []
        for rate in arguments.rate:
            row = fan_out(server, clients, arguments.seconds, rate)
            raw.append(f"{name} fan-out: {json.dumps(row)}")
            harness.log(
                f"{name} rate={rate or 'max'}: {row['delivered_per_s']:,.0f} events/s, "
                f"{row['cpu_ns_per_event'] or 0:.0f} ns CPU/event, dropped {row['dropped']}, "
                f"lost {row['lost']:,}, client CPU {row['client_share'] or 0:.0%}"
            )
            result["fanout"].append(row)
    except (OSError, RuntimeError, ValueError, KeyError, http.client.HTTPException) as error:
        result["failure"] = f"{type(error).__name__}: {error} | {harness.tail(server.log_path)}"
    finally:
        if clients is not None:
            clients.close()
        harness.stop(server)
    log_text = harness.tail(server.log_path, 5)
    if log_text:
        raw.append(f"{name} log: {log_text}")
    return result


def ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return ""
    return f" ({value / reference:.2f}x)"


def markdown(results: dict) -> str:
    rows = results["servers"]
    godottpd = next((row for row in rows if row["server"] == "godottpd"), {})
    lines = [
        "# SSE fan-out and idle event streams",
        "",
        f"{results['when']}; {results['machine']}. {results['note']}",
        "",
        f"Clients asked for: {results['clients']}; RLIMIT_NOFILE {results['nofile']}; "
        f"window {results['seconds']} s; heartbeat "
        f"{'off' if not results['heartbeat'] else str(results['heartbeat']) + ' s'}; "
        f"server on core {harness.SERVER_CORE}, client on core {harness.CLIENT_CORE}. "
        "Ratios in brackets: the server's figure / godottpd's, same run.",
        "",
        "## Idle event streams (nothing published)",
        "",
        "| server | connected | RSS before | RSS with the streams | VmHWM | per stream |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "idle" not in row:
            lines.append(f"| {row['server']} | failed: {row.get('failure', '?')[:120]} | | | | |")
            continue
        idle, reference = row["idle"], godottpd.get("idle", {})
        lines.append(
            f"| {row['server']} | {row['connected']} | {idle['rss_before_mib']:.1f} MiB | "
            f"{idle['rss_mib']:.1f} MiB{ratio(idle['rss_mib'], reference.get('rss_mib'))} | "
            f"{idle['hwm_mib']:.1f} MiB | {idle['per_stream_kib'] or 0:.1f} KiB |"
        )
    for index, rate in enumerate(results["rates"]):
        lines += [
            "",
            f"## Fan-out, {'as fast as the publish loop goes' if not rate else f'{rate} events/s'}",
            "",
            "| server | clients | events/s delivered | server CPU per event | server cores | "
            "published (events/s) | lost | dropped | ids checked: gaps / reorders | "
            "client CPU | peak RSS |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        reference = (godottpd.get("fanout") or [{}] * (index + 1))[index]
        for row in rows:
            if len(row.get("fanout", [])) <= index:
                lines.append(f"| {row['server']} | failed: {row.get('failure', '?')[:120]} |")
                continue
            fan = row["fanout"][index]
            lines.append(
                f"| {row['server']} | {fan['clients']} | {fan['delivered_per_s']:,.0f}"
                f"{ratio(fan['delivered_per_s'], reference.get('delivered_per_s'))} | "
                f"{fan['cpu_ns_per_event'] or 0:,.0f} ns"
                f"{ratio(fan['cpu_ns_per_event'], reference.get('cpu_ns_per_event'))} | "
                f"{fan['server_cores']:.2f} | "
                f"{fan['published']:,} ({fan['published_per_s']:,.0f}) | {fan['lost']:,} | "
                f"{fan['dropped']:,} | {fan['sampled']}: {fan['gaps']} / {fan['reorders']} | "
                f"{fan['client_share'] or 0:.0%} | {fan['peak_rss_mib']:.0f} MiB |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="publish window")
    parser.add_argument(
        "--rate",
        type=lambda text: [float(value) for value in text.split(",")],
        default=[0.0],
        help="events per second, comma-separated (0: as fast as the loop goes)",
    )
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before RSS")
    parser.add_argument("--heartbeat", type=float, default=0.0, help="seconds, 0: off")
    parser.add_argument("--servers", default=",".join(ALL))
    parser.add_argument("--prefix", default="sse-fanout")
    parser.add_argument("--note", default="", help="said in the results file")
    arguments = parser.parse_args()
    if not CLIENT.exists():
        sys.exit(f"{CLIENT} is missing: cargo build --release --example sse_clients")
    nofile = harness.raise_fd_limit(arguments.clients + FD_MARGIN)
    if nofile < arguments.clients + FD_MARGIN:
        harness.log(
            f"RLIMIT_NOFILE is {nofile}: {arguments.clients} clients need "
            f"{arguments.clients + FD_MARGIN}; using {nofile - FD_MARGIN}"
        )
        arguments.clients = nofile - FD_MARGIN
    names = arguments.servers.split(",")
    unavailable = {
        name: why
        for name, why in harness.install([n for n in names if n != "godottpd"], False).items()
    }
    raw: list[str] = []
    results: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": " ".join(f"{key} {value}" for key, value in harness.machine().items()),
        "note": arguments.note,
        "clients": arguments.clients,
        "nofile": nofile,
        "seconds": arguments.seconds,
        "rates": arguments.rate,
        "heartbeat": arguments.heartbeat,
        "servers": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            if name in unavailable:
                results["servers"].append({"server": name, "failure": unavailable[name]})
                continue
            harness.log(f"{name}: {arguments.clients} clients")
            row = measure(name, arguments, Path(folder), raw)
            if "idle" in row:
                harness.log(
                    f"{name}: {row['connected']} connected in {row['connect_s']:.1f} s, "
                    f"idle RSS {row['idle']['rss_mib']:.1f} MiB"
                )
            else:
                harness.log(f"{name}: {row.get('failure')}")
            results["servers"].append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    prefix = RESULTS / arguments.prefix
    Path(f"{prefix}-raw.txt").write_text("\n".join(raw) + "\n")
    Path(f"{prefix}-results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    Path(f"{prefix}-results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    os.chdir(REPO)
    main()
