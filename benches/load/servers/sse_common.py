"""What the SSE fan-out benchmark's servers share (benches/load/sse_fanout.py).

Every server sends the same fixed-size event, ``id: <10 digits>`` and 64 bytes of data
(87 bytes), so that the client counts events by their blank line and checks the ids of a
sample. Settings come from the environment: ``SSE_BUDGET``, the bytes a subscriber may be
behind before it is dropped (godottpd's ``stream_buffer``, 256 KiB by default; the peers'
queues hold as many events), and ``SSE_HEARTBEAT``, seconds (0: none).
"""

import json
import os
import time

PAYLOAD = "x" * 64
BUDGET = int(os.environ.get("SSE_BUDGET", "262144"))
HEARTBEAT = float(os.environ.get("SSE_HEARTBEAT", "0")) or None
QUEUE_EVENTS = max(1, BUDGET // 87)


def event(number: int) -> bytes:
    return f"id: {number:010d}\ndata: {PAYLOAD}\n\n".encode()


class Publisher:
    """The publish loop's bookkeeping: how many events went out and when it is done."""

    def __init__(self) -> None:
        self.published = 0
        self.dropped = 0
        self.started = 0.0
        self.finished = 0.0
        self.running = False

    def stats(self, subscribers: int) -> bytes:
        return json.dumps(
            {
                "published": self.published,
                "dropped": self.dropped,
                "subscribers": subscribers,
                "running": self.running,
                "seconds": (self.finished or time.monotonic()) - self.started,
            }
        ).encode()


def query_float(query: str, key: str, default: float) -> float:
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == key:
            return float(value)
    return default
