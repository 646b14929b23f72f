"""A real browser against ``python -m godottpd --cross-origin-isolation``.

Headless Chromium opens a page whose script fetches ``data.json``, instantiates a small
WebAssembly module with ``WebAssembly.instantiateStreaming`` (which requires the
``application/wasm`` type) and reports ``crossOriginIsolated``; the test reads the result
from the DOM Chromium dumps. A second test runs an ``EventSource`` against an
``event_stream`` route (order, reconnection, ``Last-Event-ID``).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from godottpd import HttpRouter

pytestmark = pytest.mark.browser

HOST = "127.0.0.1"

# A minimal module exporting add(i32, i32) -> i32.
ADD_WASM = bytes.fromhex(
    "0061736d01000000"  # magic, version 1
    "01070160027f7f017f"  # type section: (i32, i32) -> i32
    "03020100"  # function section: one function of type 0
    "070701036164640000"  # export section: "add" = function 0
    "0a09010700200020016a0b"  # code: local.get 0, local.get 1, i32.add, end
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>isolation</title></head>
<body><pre id="result">pending</pre>
<script>
(async () => {
  const out = {};
  try {
    const data = await (await fetch("data.json")).json();
    out.json = data.answer;
  } catch (e) { out.json = "error: " + e; }
  try {
    const { instance } = await WebAssembly.instantiateStreaming(fetch("add.wasm"));
    out.wasm = instance.exports.add(2, 3);
  } catch (e) { out.wasm = "error: " + e; }
  out.isolated = self.crossOriginIsolated;
  out.shared = typeof SharedArrayBuffer === "function";
  document.getElementById("result").textContent = "RESULT " + JSON.stringify(out) + " END";
})();
</script></body></html>
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def test_godot_style_page_runs_isolated(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install -y chromium)")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    (site / "data.json").write_text('{"answer": 42}')
    (site / "add.wasm").write_bytes(ADD_WASM)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "godottpd",
            str(site),
            "--bind",
            HOST,
            "--port",
            str(port),
            "--cross-origin-isolation",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        env=dict(os.environ),
    )
    profile = tempfile.mkdtemp(prefix="godottpd-chromium-")
    try:
        assert server.stdout is not None
        assert "Serving" in server.stdout.readline().decode()
        # crossOriginIsolated needs a secure context: http://localhost is one, 127.0.0.1 too.
        url = f"http://localhost:{port}/"
        dump = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=45,
            check=False,
        )
        dom = dump.stdout.decode(errors="replace")
        assert "RESULT " in dom, dump.stderr.decode(errors="replace")[-2000:]
        result = dom.split("RESULT ", 1)[1].split(" END", 1)[0]

        values = json.loads(result)
        assert values["json"] == 42
        assert values["wasm"] == 5
        assert values["isolated"] is True
        assert values["shared"] is True
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            if server.stdout is not None:
                server.stdout.close()
            shutil.rmtree(profile, ignore_errors=True)


EVENTS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>events pending</title></head>
<body><pre id="result">pending</pre>
<script>
const got = [];
const source = new EventSource("/events");
function report(outcome) {
  source.close();
  const text = JSON.stringify({ outcome, got });
  document.getElementById("result").textContent = "RESULT " + text + " END";
  document.title = "events " + outcome;
  fetch("/report", { method: "POST", body: text });
}
source.addEventListener("tick", (event) => {
  got.push([event.data, event.lastEventId]);
  if (got.length === 5) report("done");
});
source.onerror = () => { if (got.length === 0) report("error"); };
</script></body></html>
"""


def test_event_source_gets_events_in_order_and_resumes_with_last_event_id(serve: Any) -> None:
    """Chromium's EventSource on an event_stream route: events arrive in order; after the
    server closes the stream, the browser reconnects and sends ``Last-Event-ID``, which the
    handler reads from ``request.headers``; the page posts what it got back."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install -y chromium)")
    resumed_from: list[str | None] = []
    reports: queue.Queue[bytes] = queue.Queue()

    class Page(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            response.send(200, EVENTS_PAGE, "text/html")

    class Events(HttpRouter):
        def handle_get(self, request: Any, response: Any) -> None:
            last = request.headers.get("last-event-id")
            resumed_from.append(last)
            first = 1 if last is None else int(last) + 1
            with response.event_stream(heartbeat=None) as stream:
                for number in range(first, min(first + 3, 6)):
                    # A short retry, so that the browser comes back at once.
                    stream.send(f"event {number}", event="tick", id=str(number), retry=50)
            # Leaving the block closes the stream: the browser reconnects.

    class Report(HttpRouter):
        def handle_post(self, request: Any, response: Any) -> None:
            reports.put(request.body)
            response.send(204)

    server = serve({"/": Page(), "/events": Events(), "/report": Report()})
    profile = tempfile.mkdtemp(prefix="godottpd-chromium-")
    try:
        browser = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                f"http://{HOST}:{server.port}/",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            report = json.loads(reports.get(timeout=40))
        finally:
            try:
                dom, errors = browser.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                browser.kill()
                dom, errors = browser.communicate()
        assert report["outcome"] == "done", errors.decode(errors="replace")[-2000:]
        assert report["got"] == [[f"event {n}", str(n)] for n in range(1, 6)]
        # The first connection had no Last-Event-ID; the reconnection resumed after 3.
        assert resumed_from[:2] == [None, "3"]
        assert b"RESULT " in dom
    finally:
        shutil.rmtree(profile, ignore_errors=True)
