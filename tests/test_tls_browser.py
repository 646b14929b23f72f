"""A real browser against ``python -m godottpd --tls-self-signed --cross-origin-isolation``.

Headless Chromium maps ``game.test`` to 127.0.0.1 (``--host-resolver-rules``) and trusts
the self-signed certificate by its key (``--ignore-certificate-errors-spki-list``), as a
phone trusts it once by hand. Over HTTPS the page is a secure context and cross-origin
isolated (``SharedArrayBuffer`` available, as a threaded Godot web export needs); over plain
HTTP on a name that is not ``localhost`` it is neither: that is what HTTPS is for here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_browser import find_chromium, free_port
from tls_support import spki_sha256_base64

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>secure</title></head>
<body><pre id="result">pending</pre>
<script>
const out = {
  secure: self.isSecureContext,
  isolated: self.crossOriginIsolated,
  shared: typeof SharedArrayBuffer === "function",
  protocol: location.protocol,
};
document.getElementById("result").textContent = "RESULT " + JSON.stringify(out) + " END";
</script></body></html>
"""


class Cli:
    def __init__(self, site: Path, cache: Path, *extra: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "godottpd", str(site), "--bind", "127.0.0.1",
             "--port", str(self.port), "--cross-origin-isolation", "--quiet", *extra],
            stdout=subprocess.PIPE,
            env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        )  # fmt: skip
        assert self.process.stdout is not None
        self.lines = [self.process.stdout.readline().decode()]
        if "--tls-self-signed" in extra:
            while not self.lines[-1].lstrip().startswith("SHA-256 fingerprint"):
                line = self.process.stdout.readline().decode()
                assert line, self.lines
                self.lines.append(line)
        assert "Serving" in self.lines[0], self.lines

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()


def open_page(chromium: str, url: str, spki: str, profile: str) -> dict[str, object]:
    dump = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP game.test 127.0.0.1",
            f"--ignore-certificate-errors-spki-list={spki}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=45,
        check=False,
    )
    dom = dump.stdout.decode(errors="replace")
    assert "RESULT " in dom, (url, dump.stderr.decode(errors="replace")[-2000:])
    result: dict[str, object] = json.loads(dom.split("RESULT ", 1)[1].split(" END", 1)[0])
    return result


def test_https_page_is_secure_and_isolated_where_http_is_not(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install -y chromium)")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    cache = tmp_path / "cache"
    secure = Cli(site, cache, "--tls-self-signed")
    plain = Cli(site, cache)
    profile = tempfile.mkdtemp(prefix="godottpd-chromium-")
    try:
        assert secure.lines[0].split(" at ", 1)[1].startswith("https://")
        cert_line = next(line for line in secure.lines if line.startswith("Certificate "))
        cert = Path(cert_line.split(" ", 1)[1].strip())
        assert cert.parent == cache / "godottpd"
        spki = spki_sha256_base64(cert)

        over_https = open_page(chromium, f"https://game.test:{secure.port}/", spki, profile)
        assert over_https == {
            "secure": True,
            "isolated": True,
            "shared": True,
            "protocol": "https:",
        }
        over_http = open_page(chromium, f"http://game.test:{plain.port}/", spki, profile)
        assert over_http["protocol"] == "http:"
        assert over_http["secure"] is False
        assert over_http["isolated"] is False
    finally:
        secure.stop()
        plain.stop()
        shutil.rmtree(profile, ignore_errors=True)
