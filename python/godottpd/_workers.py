"""The supervisor of ``HttpServer.serve_forever(workers=N)``.

It forks the workers with ``os.fork()`` (so that the interpreter's own at-fork handling
runs), restarts one that dies (with back-off, and a WARNING line saying how it ended),
turns Ctrl-C and SIGTERM into a graceful stop of every worker, and returns when all have
stopped. Signals are taken synchronously (``sigtimedwait``) with SIGINT, SIGTERM and SIGCHLD
blocked, so no handler ever runs in the middle of the bookkeeping.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Protocol

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}
# A worker that lived this long before dying is restarted at once; a worker that keeps
# dying young waits 0.1 s, 0.2 s, 0.4 s ... up to 10 s.
_HEALTHY_AFTER = 10.0
_FIRST_DELAY = 0.1
_MAX_DELAY = 10.0
# The worker's exit code when its server could not start (the port is taken, say):
# restarting it would fail the same way, so every worker is stopped instead.
_CANNOT_START = 3

_log = logging.getLogger("godottpd")


class _Server(Protocol):
    def _serve_worker(self, supervisor: int) -> None: ...


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


class _Supervisor:
    def __init__(self, server: _Server, count: int, grace: float) -> None:
        self.server = server
        self.count = count
        # After SIGTERM, a worker gets its shutdown_grace and a margin before SIGKILL.
        self.kill_after = grace + 5.0
        self.pids: dict[int, int] = {}  # pid -> slot
        self.started: dict[int, float] = {}  # slot -> when
        self.failures = [0] * count
        self.restart_at: dict[int, float] = {}  # slot -> when
        self.stopping_since: float | None = None
        self.failed: str | None = None

    def spawn(self, slot: int) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child never returns from here)
            try:
                self.server._serve_worker(supervisor)
            finally:
                os._exit(1)
        self.pids[pid] = slot
        self.started[slot] = time.monotonic()
        _log.info("worker %d started (pid %d)", slot, pid)

    def reap(self) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.pids.pop(pid, None)
            if slot is None:
                continue
            if self.stopping_since is not None:
                _log.info("worker %d (pid %d) %s", slot, pid, _describe(status))
                continue
            if os.waitstatus_to_exitcode(status) == _CANNOT_START:
                self.failed = f"worker {slot} (pid {pid}) could not start its server"
                _log.error("%s; stopping every worker", self.failed)
                self.stop()
                continue
            now = time.monotonic()
            if now - self.started.get(slot, now) >= _HEALTHY_AFTER:
                self.failures[slot] = 0
            delay = min(_FIRST_DELAY * 2 ** self.failures[slot], _MAX_DELAY)
            self.failures[slot] += 1
            self.restart_at[slot] = now + delay
            _log.warning(
                "worker %d (pid %d) %s; restarting it in %.1f s",
                slot,
                pid,
                _describe(status),
                delay,
            )

    def stop(self) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            self.restart_at.clear()
            self.signal_all(signal.SIGTERM)

    def signal_all(self, signum: int) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def run(self) -> None:
        for slot in range(self.count):
            self.spawn(slot)
        while True:
            self.reap()
            now = time.monotonic()
            if self.stopping_since is None:
                for slot, when in list(self.restart_at.items()):
                    if when <= now:
                        del self.restart_at[slot]
                        self.spawn(slot)
            elif not self.pids:
                return
            elif now - self.stopping_since > self.kill_after:
                self.signal_all(signal.SIGKILL)
            timeout = 1.0
            if self.restart_at:
                timeout = max(0.0, min(min(self.restart_at.values()) - now, timeout))
            received = signal.sigtimedwait(_SIGNALS, timeout)
            if received is None or received.si_signo == signal.SIGCHLD:
                continue
            if self.stopping_since is None:
                _log.info("%s: stopping every worker", signal.Signals(received.si_signo).name)
                self.stop()
            else:
                # A second Ctrl-C while stopping: do not wait for the grace period.
                self.signal_all(signal.SIGKILL)


def supervise(server: _Server, count: int, grace: float) -> None:
    """Runs ``count`` workers of ``server`` until Ctrl-C or SIGTERM, then stops them all."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    supervisor = _Supervisor(server, count, grace)
    try:
        supervisor.run()
    finally:
        if supervisor.pids:
            supervisor.signal_all(signal.SIGKILL)
            for pid in list(supervisor.pids):
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        # Signals that came after the stop (a second Ctrl-C) must not surface later.
        while signal.sigtimedwait(_SIGNALS, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if supervisor.failed is not None:
        raise OSError(f"{supervisor.failed} (see its error above)")
