"""SIGTERM handling, the one place it lives: ``serve_forever()`` and the command line use it.

SIGTERM's default action kills the process mid-response. While a server is being served
from the main thread, it raises :class:`Terminated` instead, which ``serve_forever()`` turns
into a graceful stop (in-flight requests finish) followed by a normal return, as a program
expects of a server that was asked to stop. A handler the program installed itself is
left alone.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class Terminated(BaseException):
    """SIGTERM arrived: stop gracefully. A ``BaseException``, as ``KeyboardInterrupt`` is,
    so that ``except Exception`` in user code does not swallow it."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def install() -> Any:
    """Installs the SIGTERM handler if SIGTERM has its default action and this is the main
    thread; returns what :func:`restore` needs (``None`` when nothing was installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    sigterm = getattr(signal, "SIGTERM", None)
    if sigterm is None or signal.getsignal(sigterm) is not signal.SIG_DFL:
        return None
    return signal.signal(sigterm, _on_sigterm)


def restore(previous: Any) -> None:
    """Puts back the handler :func:`install` replaced."""
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
