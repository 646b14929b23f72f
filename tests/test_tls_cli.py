"""``python -m godottpd`` with ``--tls-self-signed`` and ``--tls-cert``/``--tls-key``, with
workers, and HTTPS behind HAProxy (PROXY protocol in front of the handshake)."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from godottpd import _godottpd
from godottpd.cli import main
from test_cli import free_port
from test_workers import CLIENT, haproxy  # noqa: F401
from tls_support import first_der

HOST = "127.0.0.1"


class TlsCli:
    """A running ``python -m godottpd`` whose banner (every line up to the fingerprint, or
    the first line without TLS) is read at start."""

    def __init__(self, site: Path, cache: Path, *args: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "godottpd", str(site), "--port", str(self.port), "--quiet",
             *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        )  # fmt: skip
        assert self.process.stdout is not None
        self.lines: list[str] = []
        while True:
            line = self.process.stdout.readline().decode()
            if not line:
                assert self.process.stderr is not None
                raise AssertionError(self.process.stderr.read().decode())
            self.lines.append(line.rstrip("\n"))
            if "fingerprint" in line:
                break

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>tls</h1>")
    return root


@pytest.fixture
def running() -> Iterator[list[TlsCli]]:
    started: list[TlsCli] = []
    yield started
    for process in started:
        process.stop()


def get(port: int, context: ssl.SSLContext, host: str = "localhost") -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_self_signed_prints_urls_and_fingerprint(
    site: Path, tmp_path: Path, running: list[TlsCli]
) -> None:
    process = TlsCli(site, tmp_path / "cache", "--tls-self-signed")
    running.append(process)
    first, *rest = process.lines
    assert first.startswith(f"Serving {site} at https://localhost:{process.port}/")
    also = [line.split("also at ", 1)[1] for line in rest if "also at " in line]
    expected = [
        f"https://{f'[{a}]' if ':' in a else a}:{process.port}/"
        for a in _godottpd._machine_addresses()
    ]
    assert also == expected
    cert = Path(next(line for line in rest if line.startswith("Certificate ")).split(" ", 1)[1])
    assert cert.parent == tmp_path / "cache" / "godottpd"
    digest = hashlib.sha256(first_der(cert)).hexdigest().upper()
    printed = rest[-1].split("SHA-256 fingerprint ", 1)[1]
    assert printed == ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    # The certificate verifies as its own root, for localhost and 127.0.0.1.
    context = ssl.create_default_context(cafile=str(cert))
    assert get(process.port, context) == (200, b"<h1>tls</h1>")
    assert get(process.port, context, "127.0.0.1") == (200, b"<h1>tls</h1>")
    # A second run reuses the certificate: the fingerprint a phone accepted still holds.
    assert process.stop() == 0
    running.remove(process)
    again = TlsCli(site, tmp_path / "cache", "--tls-self-signed", "--bind", HOST)
    running.append(again)
    assert again.lines[-1] == rest[-1]
    assert not any("also at" in line for line in again.lines), again.lines


def test_tls_cert_and_key(
    site: Path, tmp_path: Path, tls_certs: Any, running: list[TlsCli]
) -> None:
    process = TlsCli(
        site,
        tmp_path / "cache",
        "--bind",
        HOST,
        "--tls-cert",
        str(tls_certs.ec_chain),
        "--tls-key",
        str(tls_certs.ec_sec1_key),
    )
    running.append(process)
    assert process.lines[0].startswith(f"Serving {site} at https://{HOST}:{process.port}/")
    assert get(process.port, tls_certs.client_context()) == (200, b"<h1>tls</h1>")
    assert not (tmp_path / "cache").exists(), "no self-signed certificate was made"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-self-signed", "--tls-cert", "c.pem"], "drop --tls-cert"),
        (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "k.pem"], "/nonexistent/c.pem"),
    ],
)
def test_bad_tls_options_are_usage_errors(
    site: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(site), "--port", "0", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_workers_serve_https_and_stop_on_sigterm(
    site: Path, tmp_path: Path, running: list[TlsCli]
) -> None:
    # The certificate is loaded before the fork; each worker does its own handshakes.
    process = TlsCli(
        site, tmp_path / "cache", "--tls-self-signed", "--bind", HOST, "--workers", "2"
    )
    running.append(process)
    assert "with 2 workers" in process.lines[0], process.lines
    cert = next(line for line in process.lines if line.startswith("Certificate "))
    context = ssl.create_default_context(cafile=cert.split(" ", 1)[1])
    port = int(process.lines[0].split(f"{HOST}:")[1].split("/")[0])

    def answers() -> tuple[int, bytes] | None:
        try:
            return get(port, context, HOST)
        except OSError:  # the workers are not listening yet
            return None

    assert wait_for(answers, timeout=20) == (200, b"<h1>tls</h1>")
    for _ in range(6):
        assert get(port, context, HOST) == (200, b"<h1>tls</h1>")
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=30) == 0


@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_haproxy_in_front_of_https_gives_the_original_client(
    serve: Any,
    make_router: Any,
    tls_certs: Any,
    haproxy: Any,  # noqa: F811 (the fixture imported from test_workers)
    send_proxy: str,
) -> None:
    """HAProxy in TCP mode passes the TLS bytes through after its PROXY header: the
    handshake is godottpd's, and the client is the one HAProxy names."""
    router = make_router(
        get=lambda req, res: res.send(200, f"{req.client.host} {req.scheme}", "text/plain")
    )
    server = serve(
        {"/": router},
        proxy_protocol=True,
        tls_cert=tls_certs.ec_chain,
        tls_key=tls_certs.ec_key,
    )
    port = haproxy(server.port, send_proxy)
    connection = http.client.HTTPSConnection(
        "localhost",
        port,
        context=tls_certs.client_context(),
        timeout=10,
        source_address=(CLIENT, 0),
    )
    try:
        connection.request("GET", "/")
        assert connection.getresponse().read() == f"{CLIENT} https".encode()
    finally:
        connection.close()
