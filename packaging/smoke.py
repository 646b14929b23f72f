"""Smoke test of an installed godottpd (a wheel or the sdist), run by ``make wheels``.

Run it with the interpreter of the environment under test, from outside the source tree,
so that ``import godottpd`` finds the installed package and not ``python/``::

    /path/to/venv/bin/python packaging/smoke.py

It starts a server on a free port of 127.0.0.1 that serves a temporary folder with
``HttpFileRouter`` and a Python ``HttpRouter`` route, fetches both with ``http.client`` and
checks status and body, does the same with the handlers inline (``handler_threads=0``),
runs ``python -m godottpd --version``, then stops. When the package has HTTPS
(``godottpd.self_signed_certificate`` exists) it also serves and fetches both over TLS,
verifying the certificate. Exits non-zero, with the reason, on any failure; prints one line
per check and a closing ``N passed, 0 failed`` line.
"""

from __future__ import annotations

import http.client
import os
import platform
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import godottpd
from godottpd import HttpFileRouter, HttpRequest, HttpResponse, HttpRouter, HttpServer

HOST = "127.0.0.1"
FILE_BODY = b"<!doctype html><title>smoke</title><p>served from a folder</p>\n"
passed = 0


def check(name: str, condition: bool, detail: object = "") -> None:
    global passed
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        print(f"{passed} passed, 1 failed", flush=True)
        sys.exit(1)
    passed += 1
    print(f"ok   {name}", flush=True)


class Hello(HttpRouter):
    def handle_get(self, request: HttpRequest, response: HttpResponse) -> None:
        response.send(200, f"Hello, {request.parameters['name']}!", "text/plain")

    def handle_post(self, request: HttpRequest, response: HttpResponse) -> None:
        response.json(201, {"got": request.get_body_parsed()})


def fetch(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
    else:
        # The self-signed certificate names 127.0.0.1 (and localhost): checked against HOST.
        connection = http.client.HTTPSConnection(HOST, port, timeout=10, context=context)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response
    finally:
        connection.close()


def exercise(server: HttpServer, label: str, context: ssl.SSLContext | None = None) -> None:
    port = server.port
    check(f"{label}: started on a free port", server.is_running and port > 0, port)

    status, body, response = fetch(port, "GET", "/files/index.html", context=context)
    check(f"{label}: GET file 200", status == 200, status)
    check(f"{label}: file body", body == FILE_BODY, body[:80])
    check(
        f"{label}: file content type",
        (response.getheader("Content-Type") or "").startswith("text/html"),
        response.getheader("Content-Type"),
    )

    status, body, _ = fetch(port, "GET", "/files/", context=context)
    check(f"{label}: GET folder index 200", status == 200 and body == FILE_BODY, status)

    status, body, _ = fetch(port, "GET", "/hello/wheel", context=context)
    check(f"{label}: GET Python route", (status, body) == (200, b"Hello, wheel!"), (status, body))

    status, body, _ = fetch(
        port,
        "POST",
        "/hello/wheel",
        body=b'{"a": [1, 2]}',
        headers={"Content-Type": "application/json"},
        context=context,
    )
    check(
        f"{label}: POST JSON route",
        (status, body.replace(b" ", b"")) == (201, b'{"got":{"a":[1,2]}}'),
        (status, body),
    )

    status, body, _ = fetch(port, "GET", "/nowhere", context=context)
    check(f"{label}: unknown path 404", status == 404, status)


def serve(folder: Path, label: str, context: ssl.SSLContext | None = None, **kwargs: Any) -> None:
    server = HttpServer(port=0, bind_address=HOST, **kwargs)
    server.register_router("/files", HttpFileRouter(folder))
    server.register_router("/hello/:name", Hello())
    server.start()
    try:
        exercise(server, label, context)
    finally:
        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started
    check(f"{label}: stopped", not server.is_running, server.is_running)
    check(f"{label}: stop() took {stopped_in:.2f} s", stopped_in < 5.0, stopped_in)


def tls_files(made: Any, folder: Path) -> tuple[str, str]:
    """The certificate and key files from what ``self_signed_certificate()`` returned.

    Accepts a (certificate, key) pair or an object with certificate and key attributes;
    each may be a path or PEM text (written to a file here).
    """
    cert: Any = None
    key: Any = None
    if isinstance(made, (tuple, list)) and len(made) >= 2:
        cert, key = made[0], made[1]
    else:
        for name in ("cert_path", "certificate_path", "cert_file", "cert", "certificate"):
            cert = cert if cert is not None else getattr(made, name, None)
        for name in ("key_path", "key_file", "private_key_path", "key", "private_key"):
            key = key if key is not None else getattr(made, name, None)
    if cert is None or key is None:
        check("HTTPS: self_signed_certificate() result understood", False, repr(made))

    def as_file(value: Any, name: str) -> str:
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
            path = folder / name
            path.write_text(value)
            return str(path)
        return str(os.fspath(value))

    return as_file(cert, "cert.pem"), as_file(key, "key.pem")


def main() -> None:
    print(
        f"godottpd {godottpd.__version__} from {Path(godottpd.__file__).parent} on "
        f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        flush=True,
    )
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    location = Path(godottpd.__file__).resolve()
    check("imported from the environment's site-packages", site in location.parents, location)
    check("version is a string", isinstance(godottpd.__version__, str), godottpd.__version__)
    package = location.parent
    check("py.typed installed", (package / "py.typed").is_file(), sorted(os.listdir(package)))
    check(
        "extension is the abi3 build",
        any(p.name.startswith("_godottpd.") and "abi3" in p.name for p in package.iterdir())
        or sys.platform == "win32",
        sorted(os.listdir(package)),
    )

    version = subprocess.run(
        [sys.executable, "-m", "godottpd", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    check(
        "python -m godottpd --version",
        version.returncode == 0 and godottpd.__version__ in version.stdout,
        (version.returncode, version.stdout, version.stderr),
    )

    with tempfile.TemporaryDirectory(prefix="godottpd-smoke-") as temp:
        folder = Path(temp) / "site"
        folder.mkdir()
        (folder / "index.html").write_bytes(FILE_BODY)

        serve(folder, "HTTP")
        serve(folder, "HTTP inline", handler_threads=0)

        if hasattr(godottpd, "self_signed_certificate"):
            made = godottpd.self_signed_certificate()
            cert, key = tls_files(made, Path(temp))
            context = ssl.create_default_context(cafile=cert)
            serve(folder, "HTTPS", context, tls_cert=cert, tls_key=key)
        else:
            print("skip HTTPS: this build has no godottpd.self_signed_certificate", flush=True)

    print(f"{passed} passed, 0 failed", flush=True)


if __name__ == "__main__":
    main()
