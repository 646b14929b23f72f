"""``python -m godottpd`` as a subprocess on a free port: URL, requests, access log, options,
and a clean exit on SIGINT and SIGTERM."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from godottpd.cli import main

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Cli:
    """A running ``python -m godottpd``; its stderr goes to a file, read on demand."""

    def __init__(
        self,
        *args: str,
        cwd: Path | None = None,
        user: int | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.stderr = tempfile.TemporaryFile()
        argv = [*prefix, sys.executable, "-m", "godottpd", *args]
        if "--port" not in args:
            argv += ["--port", str(self.port)]
        try:
            self.process = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                cwd=cwd,
                env=dict(os.environ),
                user=user,
            )
        except OSError:
            self.stderr.close()
            raise
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline().decode()

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def body(self, path: str) -> bytes:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().read()
        finally:
            conn.close()

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode()

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.stderr.close()


@pytest.fixture
def public(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    root.mkdir()
    (root / "index.html").write_text("<h1>cli</h1>")
    (root / "game.wasm").write_bytes(b"\0asm\1\0\0\0")
    return root


@pytest.fixture
def cli() -> Iterator[list[Cli]]:
    started: list[Cli] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.stop(signal.SIGKILL)


def start(started: list[Cli], *args: str, **kwargs: object) -> Cli:
    process = Cli(*args, **kwargs)  # type: ignore[arg-type]
    started.append(process)
    return process


def test_serves_a_folder_and_logs(cli: list[Cli], public: Path) -> None:
    process = start(cli, str(public), "--bind", HOST)
    assert process.first_line.startswith(f"Serving {public} at http://{HOST}:{process.port}/")
    response = process.get("/")
    assert response.status == 200
    assert process.body("/") == b"<h1>cli</h1>"
    assert process.get("/game.wasm").getheader("content-type") == "application/wasm"
    assert process.get("/missing").status == 404
    deadline = time.monotonic() + 5
    while process.log().count("\n") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = process.log().splitlines()
    assert lines[0].startswith("127.0.0.1 - - [")
    assert lines[0].endswith('"GET / HTTP/1.1" 200 12')
    assert lines[-1].endswith('"GET /missing HTTP/1.1" 404 9')
    assert process.stop(signal.SIGINT) == 0


def test_default_folder_is_the_current_one(cli: list[Cli], public: Path) -> None:
    process = start(cli, "--bind", HOST, cwd=public)
    assert f"Serving {public} at http://{HOST}:" in process.first_line
    assert process.body("/") == b"<h1>cli</h1>"
    assert process.stop() == 0


def test_wildcard_bind_prints_localhost(cli: list[Cli], public: Path) -> None:
    process = start(cli, str(public))
    assert f"http://localhost:{process.port}/" in process.first_line
    assert process.body("/") == b"<h1>cli</h1>"
    assert process.stop() == 0


def test_quiet_stderr_is_empty(cli: list[Cli], public: Path) -> None:
    process = start(cli, str(public), "--bind", HOST, "-q")
    assert process.get("/").status == 200
    time.sleep(0.3)
    assert process.log() == ""
    assert process.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_clean_exit_on_signals(cli: list[Cli], public: Path, sig: int) -> None:
    process = start(cli, str(public), "--bind", HOST)
    assert process.get("/").status == 200
    process.process.send_signal(sig)
    assert process.process.wait(timeout=10) == 0
    assert "Traceback" not in process.log()
    process.stop()


def test_cross_origin_isolation_fallback_and_cors(
    cli: list[Cli], public: Path, tmp_path: Path
) -> None:
    process = start(
        cli,
        str(public),
        "--bind",
        HOST,
        "--cross-origin-isolation",
        "--fallback",
        "index.html",
        "--cors",
        "https://a.example",
        "--cors",
        "https://b.example",
    )
    response = process.get("/deep/link", {"Origin": "https://b.example"})
    assert response.status == 200
    assert response.getheader("cross-origin-opener-policy") == "same-origin"
    assert response.getheader("cross-origin-embedder-policy") == "require-corp"
    assert response.getheader("cross-origin-resource-policy") == "same-origin"
    assert response.getheader("access-control-allow-origin") == "https://b.example"
    assert process.body("/deep/link") == b"<h1>cli</h1>"
    assert process.stop() == 0


def test_busy_port_fails_with_code_1(cli: list[Cli], public: Path) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(cli, str(public), "--bind", HOST, "--port", str(port))
        assert process.process.wait(timeout=10) == 1
        assert "cannot listen" in process.log()
        process.stop()


def test_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "is not a folder" in capsys.readouterr().err


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in [
        "DIR",
        "--port",
        "--bind",
        "--cross-origin-isolation",
        "--fallback",
        "--index",
        "--cors",
        "--quiet",
    ]:
        assert option in text


# As root, the server runs with the capabilities that bypass file permissions dropped
# (setpriv, from util-linux), so a mode-000 file is unreadable to it as to any user.
DROP_FILE_CAPABILITIES = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
)


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root, needs setpriv (util-linux) to drop the file-permission capabilities",
)
def test_unreadable_file_is_403_not_200(cli: list[Cli]) -> None:
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        (base / "ok.txt").write_text("fine")
        (base / "locked.txt").write_text("secret")
        (base / "locked.txt").chmod(0)
        (base / "ok.txt").chmod(0o644)
        prefix = DROP_FILE_CAPABILITIES if os.geteuid() == 0 else ()
        process = start(cli, str(base), "--bind", HOST, prefix=prefix)
        assert process.first_line, process.log()[-500:]
        assert process.body("/ok.txt") == b"fine"
        response = process.get("/locked.txt")
        assert response.status == 403
        assert process.stop() == 0
    finally:
        for child in base.iterdir():
            child.unlink()
        base.rmdir()


def test_cache_control_defaults_to_no_cache(cli: list[Cli], public: Path) -> None:
    process = start(cli, str(public), "--bind", HOST, "-q")
    assert process.get("/game.wasm").getheader("cache-control") == "no-cache"
    assert process.stop() == 0
    custom = start(cli, str(public), "--bind", HOST, "-q", "--cache-control", "max-age=60")
    assert custom.get("/").getheader("cache-control") == "max-age=60"
    assert custom.stop() == 0
    none = start(cli, str(public), "--bind", HOST, "-q", "--cache-control", "")
    assert none.get("/").getheader("cache-control") is None
    assert none.stop() == 0


def test_ctrl_c_while_the_url_line_is_blocked_exits_cleanly(public: Path) -> None:
    """SIGINT while the CLI is blocked writing its URL line (stdout pipe full) exits 0.

    The pipe is filled before the CLI starts and only drained after SIGINT, so the signal
    always arrives while the server runs and the CLI has not reached serve_forever().
    """
    import fcntl

    read_end, write_end = os.pipe()
    size = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
    os.write(write_end, b"x" * size)  # exactly full: the CLI's first write blocks
    port = free_port()
    stderr = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "godottpd", str(public), "--bind", HOST, "--port", str(port)],
        stdout=write_end,
        stderr=stderr,
    )
    os.close(write_end)
    try:
        deadline = time.monotonic() + 20
        while True:  # the server is up once it accepts a connection
            assert process.poll() is None and time.monotonic() < deadline
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        with os.fdopen(read_end, "rb") as pipe:
            drained = pipe.read()  # unblocks the write; EOF once the CLI has exited
        assert process.wait(timeout=20) == 0
        assert drained.startswith(b"x" * size)
        stderr.seek(0)
        assert b"Traceback" not in stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()
