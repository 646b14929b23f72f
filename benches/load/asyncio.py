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
"""

from __future__ import annotations

import importlib.util
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
            sys.executable,
            str(run.SERVERS_DIR / "godottpd_async_app.py"),
            str(port),
            str(static_dir),
        ]
        server.note = "async def handlers, await server.serve() under uvloop"
    return server


def version_of(name: str) -> str:
    return _version_of("granian" if name == "granian-asgi" else name)


def main() -> None:
    run.build_server = build_server
    run.version_of = version_of
    run.ALL_SERVERS.append("granian-asgi")
    run.PYTHON_PEERS.append("granian-asgi")
    run.PEERS.append("granian-asgi")
    run.COLORS["granian-asgi"] = "#aec7e8"
    argv = sys.argv[1:]
    if not any(arg.startswith("--servers") for arg in argv):
        argv += ["--servers", ",".join(SERVERS)]
    if not any(arg.startswith(("--shapes", "--routes")) for arg in argv):
        argv += ["--shapes", ",".join(SHAPES)]
    if not any(arg.startswith("--prefix") for arg in argv):
        argv += ["--prefix", "asyncio-quick" if "--quick" in argv else "asyncio"]
    sys.argv = [sys.argv[0], *argv]
    run.main()


if __name__ == "__main__":
    main()
