"""Load benchmark of ``async def`` handlers (issue 11): godottpd's coroutine handlers
against granian (RSGI and ASGI) and uvicorn (httptools, uvloop), every server running the
same routes as async handlers on one event loop.

It is ``run.py`` (same harness: pinned cores, wrk, CPU time per request, interleaved runs,
ratios to godottpd, the targets list) with two changes: the server called ``godottpd``
is ``servers/godottpd_async_app.py`` (coroutine handlers, ``await server.serve()`` under
uvloop), and ``granian-asgi`` (granian's ASGI interface running uvicorn's ASGI app) joins
the peers. Results are prefixed ``asyncio`` (``asyncio-quick`` with ``--quick``).

    python benches/load/asyncio.py --quick
    python benches/load/asyncio.py --shapes plaintext,json,echo,c1024
    python benches/load/asyncio.py --python /root/.pyenv/versions/3.12.1/bin/python3 ...

``--python PATH`` runs godottpd's server on another interpreter (one with uvloop, e.g. a
venv of Python 3.12+, where handlers start eagerly); the peers stay on this one. The
version goes into the notes and the results are prefixed ``asyncio-pyXY``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

spec = importlib.util.spec_from_file_location("godottpd_load_run", HERE / "run.py")
assert spec is not None and spec.loader is not None
run = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = run
spec.loader.exec_module(run)

SERVERS = ["godottpd", "granian", "granian-asgi", "uvicorn"]
SHAPES = ["plaintext", "json", "echo", "static", "c1024"]

_build_server = run.build_server
_version_of = run.version_of


# The interpreter of godottpd's server (``--python``).
PYTHON = sys.executable


def build_server(name: str, static_dir: Path, tmp: Path, baseline: Path | None = None) -> object:
    if name == "granian-asgi":
        server = _build_server("granian", static_dir, tmp, baseline)
        server.name = name
        command = server.command
        command[command.index("rsgi")] = "asgi"
        command[command.index("granian_app:app")] = "uvicorn_app:app"
        return server
    server = _build_server(name, static_dir, tmp, baseline)
    if name == "godottpd":
        port = server.port
        server.command = [
            PYTHON,
            str(run.SERVERS_DIR / "godottpd_async_app.py"),
            str(port),
            str(static_dir),
        ]
        server.note = "async def handlers, await server.serve() under uvloop"
        if PYTHON != sys.executable:
            server.note += f", {python_version(PYTHON)}"
    return server


def python_version(python: str) -> str:
    check = "import platform; print('Python ' + platform.python_version())"
    return subprocess.run([python, "-c", check], capture_output=True, text=True).stdout.strip()


def version_of(name: str) -> str:
    return _version_of("granian" if name == "granian-asgi" else name)


def main() -> None:
    run.build_server = build_server
    run.version_of = version_of
    run.ALL_SERVERS.append("granian-asgi")
    run.PYTHON_PEERS.append("granian-asgi")
    run.PEERS.append("granian-asgi")
    run.COLORS["granian-asgi"] = "#aec7e8"
    global PYTHON
    argv = sys.argv[1:]
    for index, arg in enumerate(argv):
        if arg == "--python" or arg.startswith("--python="):
            value = arg.partition("=")[2] or argv[index + 1]
            del argv[index : index + (1 if "=" in arg else 2)]
            PYTHON = value
            break
    if not any(arg.startswith("--servers") for arg in argv):
        argv += ["--servers", ",".join(SERVERS)]
    if not any(arg.startswith(("--shapes", "--routes")) for arg in argv):
        argv += ["--shapes", ",".join(SHAPES)]
    if not any(arg.startswith("--prefix") for arg in argv):
        prefix = "asyncio-quick" if "--quick" in argv else "asyncio"
        if PYTHON != sys.executable:
            prefix += "-py" + python_version(PYTHON).split()[-1].replace(".", "")[:3]
        argv += ["--prefix", prefix]
    sys.argv = [sys.argv[0], *argv]
    run.main()


if __name__ == "__main__":
    main()
