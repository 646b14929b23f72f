"""What the SSE fan-out benchmark's servers share (benches/load/sse_fanout.py).

Every server sends the same fixed-size event, ``id: <10 digits>`` and 64 bytes of data
(87 bytes), so that the client counts events by their blank line and checks the ids of a
sample. Settings come from the environment: ``SSE_BUDGET``, the bytes a subscriber may be
behind before it is dropped (godottpd's ``stream_buffer``, 256 KiB by default; the peers'
queues hold as many events), and ``SSE_HEARTBEAT``, seconds (0: none).
"""

import asyncio
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


def drop(subscribers: set, publisher: Publisher, queue: asyncio.Queue) -> None:
    """Drops a subscriber that fell a whole queue behind (as EventHub drops one that is
    more than its budget behind): its stream ends after what it was sent."""
    subscribers.discard(queue)
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
    publisher.dropped += 1


async def publish(subscribers: set, publisher: Publisher, seconds: float, rate: float) -> None:
    """The asyncio servers' publish loop: each event into every subscriber's queue, for
    SECONDS, at RATE events/s (0: as fast as the loop goes; ``sleep(0)`` lets every sender
    run once between events)."""
    publisher.started = time.monotonic()
    end = publisher.started + seconds
    number = 0
    while (now := time.monotonic()) < end:
        due = publisher.started + number / rate if rate else now
        await asyncio.sleep(max(0.0, due - now))
        number += 1
        data = event(number)
        for queue in list(subscribers):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                drop(subscribers, publisher, queue)
        publisher.published = number
    publisher.finished = time.monotonic()
    publisher.running = False


async def next_event(queue: asyncio.Queue) -> bytes | None:
    """What an asyncio server's subscriber sends next: an event, a heartbeat comment after
    HEARTBEAT seconds without one, or None once it was dropped."""
    try:
        return await asyncio.wait_for(queue.get(), HEARTBEAT)
    except asyncio.TimeoutError:
        return b":\n\n"
