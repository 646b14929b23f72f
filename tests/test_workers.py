"""Worker processes and real load balancers: serve_forever(workers=N) as a subprocess,
nginx in front of two workers, HAProxy with send-proxy-v2 and send-proxy in front of
godottpd. nginx and haproxy come from Debian's packages (.ci/run installs them)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from godottpd import HttpRouter, HttpServer

HOST = "127.0.0.1"
# A client address other than the proxies' own 127.0.0.1, so that "the original client"
# is distinguishable (all of 127.0.0.0/8 is loopback on Linux).
CLIENT = "127.0.0.2"

WORKER_APP = textwrap.dedent(
    """
    import os, sys, time, logging
    from pathlib import Path
    from godottpd import HttpRouter, HttpServer
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    marks = Path(sys.argv[1])

    class App(HttpRouter):
        def handle_get(self, request, response):
            if request.path == "/slow":
                (marks / f"slow-{os.getpid()}").touch()
                time.sleep(1.0)
            response.send(200, f"{os.getpid()} {request.client.host}", "text/plain")

    server = HttpServer(port=0, bind_address="127.0.0.1", trusted_proxies=["127.0.0.1"],
                        shutdown_grace=5.0)
    server.register_router("/", App())
    server.register_router("/slow", App())
    print("port", server._prepare_workers(), flush=True)
    server.serve_forever(workers=int(sys.argv[2]))
    print("stopped", flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str = "/", source: str = HOST, timeout: float = 10.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def try_get(port: int, source: str = HOST) -> tuple[int, str] | None:
    try:
        return get(port, source=source, timeout=5.0)
    except OSError:
        return None


class Workers:
    def __init__(self, tmp: Path, count: int) -> None:
        self.marks = tmp
        script = tmp / "app.py"
        script.write_text(WORKER_APP)
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(tmp), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("port "), line + self.stderr()
        self.port = int(line.split()[1])
        assert wait_for(lambda: try_get(self.port), timeout=20), self.stderr()

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def pids(self, port: int | None = None, want: int = 2, tries: int = 400) -> set[int]:
        """Worker PIDs seen over new connections, until `want` distinct ones answered."""
        seen: set[int] = set()
        for _ in range(tries):
            answer = try_get(port or self.port)
            if answer is not None and answer[0] == 200:
                seen.add(int(answer[1].split()[0]))
            if len(seen) >= want:
                break
        return seen

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[int], Workers]]:
    started: list[Workers] = []

    def _start(count: int) -> Workers:
        w = Workers(tmp_path, count)
        started.append(w)
        return w

    yield _start
    for w in started:
        if w.process.poll() is None:
            w.process.kill()
            w.process.wait(timeout=30)
        for pipe in (w.process.stdout, w.process.stderr):
            if pipe is not None:
                pipe.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not serving: check its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_two_workers_share_the_port_and_a_killed_one_is_replaced(
    workers: Callable[[int], Workers],
) -> None:
    w = workers(2)
    pids = w.pids()
    assert len(pids) == 2, "connections spread over both workers"
    assert w.process.pid not in pids
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    survivors = pids - {victim}
    replaced = wait_for(lambda: w.pids(want=2, tries=50) - survivors - {victim}, timeout=20)
    assert replaced, "a new worker took the dead one's place"
    assert w.stop() == 0
    assert "was killed by SIGKILL; restarting it" in w.stderr()


def test_sigterm_and_ctrl_c_stop_every_worker_gracefully(
    workers: Callable[[int], Workers], tmp_path: Path
) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        for mark in tmp_path.glob("slow-*"):
            mark.unlink()
        w = workers(2)
        pids = w.pids()
        results: list[tuple[int, str]] = []
        slow = threading.Thread(target=lambda r=results, p=w.port: r.append(get(p, "/slow")))
        slow.start()
        assert wait_for(lambda: list(tmp_path.glob("slow-*")), timeout=10)
        assert w.stop(signum) == 0
        slow.join(timeout=30)
        assert results and results[0][0] == 200, "the in-flight request finished"
        assert not any(alive(pid) for pid in pids)
        assert w.process.stdout is not None
        assert "stopped" in w.process.stdout.read()


def test_workers_die_with_their_supervisor(workers: Callable[[int], Workers]) -> None:
    w = workers(2)
    pids = w.pids()
    w.process.kill()
    w.process.wait(timeout=30)
    assert wait_for(lambda: not any(alive(pid) for pid in pids), timeout=20)


def need(tool: str) -> str:
    path = shutil.which(tool) or (
        f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None
    )
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool}; .ci/run does)")
    return path


def test_nginx_in_front_of_two_workers(workers: Callable[[int], Workers], tmp_path: Path) -> None:
    nginx = need("nginx")
    w = workers(2)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    # The upstream is listed twice with max_fails=0, so a request whose connection landed on
    # a worker just killed is retried on a fresh connection instead of failing.
    conf.write_text(
        textwrap.dedent(
            f"""
            master_process off;
            daemon off;
            pid {tmp_path}/nginx.pid;
            error_log stderr warn;
            events {{ worker_connections 256; }}
            http {{
                access_log off;
                client_body_temp_path {tmp_path}/body;
                proxy_temp_path {tmp_path}/proxy;
                fastcgi_temp_path {tmp_path}/fastcgi;
                uwsgi_temp_path {tmp_path}/uwsgi;
                scgi_temp_path {tmp_path}/scgi;
                upstream app {{
                    server 127.0.0.1:{w.port} max_fails=0;
                    server 127.0.0.1:{w.port} max_fails=0;
                }}
                server {{
                    listen 127.0.0.1:{port};
                    location / {{
                        proxy_pass http://app;
                        proxy_next_upstream error timeout;
                        proxy_set_header Host $host;
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                        proxy_set_header X-Forwarded-Proto $scheme;
                    }}
                }}
            }}
            """
        )
    )
    log = (tmp_path / "nginx.log").open("wb")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stderr=log)
    try:
        assert wait_for(lambda: try_get(port, source=CLIENT), timeout=20)
        status, body = get(port, source=CLIENT)
        assert status == 200
        assert body.split()[1] == CLIENT, "the handler sees the real client via X-Forwarded-For"
        # A client spoofing X-Forwarded-For gets only its own address appended to it:
        # the rightmost untrusted address is still the real one.
        conn = http.client.HTTPConnection(HOST, port, timeout=10, source_address=(CLIENT, 0))
        conn.request("GET", "/", headers={"X-Forwarded-For": "6.6.6.6"})
        assert conn.getresponse().read().decode().split()[1] == CLIENT
        conn.close()
        pids = w.pids(port)
        assert len(pids) == 2, "nginx's requests spread over both workers"
        os.kill(min(pids), signal.SIGKILL)
        statuses = [get(port, source=CLIENT)[0] for _ in range(30)]
        assert statuses == [200] * 30, "nginx keeps answering while the worker is replaced"
        assert wait_for(lambda: len(w.pids(port, tries=40) - pids) >= 1, timeout=20)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert w.stop() == 0


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[int, str], int]]:
    binary = need("haproxy")
    procs: list[subprocess.Popen[bytes]] = []

    def _start(backend_port: int, send_proxy: str) -> int:
        port = free_port()
        conf = tmp_path / f"haproxy-{port}.cfg"
        conf.write_text(
            textwrap.dedent(
                f"""
                defaults
                    mode tcp
                    timeout connect 5s
                    timeout client 30s
                    timeout server 30s
                frontend front
                    bind 127.0.0.1:{port}
                    default_backend back
                backend back
                    server godottpd 127.0.0.1:{backend_port} {send_proxy}
                """
            )
        )
        procs.append(subprocess.Popen([binary, "-db", "-f", str(conf)], stderr=subprocess.DEVNULL))
        assert wait_for(lambda: try_get(port, source=CLIENT), timeout=20)
        return port

    yield _start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


class ClientEcho(HttpRouter):
    def handle_get(self, request: Any, response: Any) -> None:
        response.send(200, f"{request.client.host} {request.client.port}", "text/plain")


@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_haproxy_proxy_protocol_gives_the_original_client(
    serve: Callable[..., HttpServer], haproxy: Callable[[int, str], int], send_proxy: str
) -> None:
    server = serve({"/": ClientEcho()}, proxy_protocol=True)
    port = haproxy(server.port, send_proxy)
    conn = http.client.HTTPConnection(HOST, port, timeout=10, source_address=(CLIENT, 0))
    conn.request("GET", "/")
    host, client_port = conn.getresponse().read().decode().split()
    assert host == CLIENT, f"{send_proxy}: request.client.host is the original client"
    assert int(client_port) == conn.sock.getsockname()[1]
    conn.close()
    # A direct connection without the header is closed.
    assert try_get(server.port) is None


def test_cli_workers_serve_a_folder_and_stop_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hello")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "godottpd", str(tmp_path), "--port", "0", "--bind", HOST),
            *("--workers", "2", "--threads", "2", "--trusted-proxy", "127.0.0.1", "--quiet"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "with 2 workers" in line, line
        port = int(line.split(f"{HOST}:")[1].split("/")[0])
        answer = wait_for(lambda: try_get(port), timeout=20)
        assert answer == (200, "hello")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
