"""Signal handling for ``HttpServer.serve_forever()``."""

from __future__ import annotations

from types import FrameType


def terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler installed while ``serve_forever()`` runs: a clean, graceful exit.

    Raising ``SystemExit`` lets ``serve_forever()`` stop the server (finishing in-flight
    requests) before the program ends, as it does for Ctrl-C.
    """
    raise SystemExit(0)
