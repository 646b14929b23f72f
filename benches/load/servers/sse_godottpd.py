"""godottpd in the SSE fan-out benchmark: an ``EventHub``, one publish loop on a thread.

Usage: python sse_godottpd.py PORT. ``GET /events`` subscribes; ``GET /start?seconds=S&rate=R``
starts publishing for S seconds, R events a second (0: as fast as ``publish()`` returns);
``GET /stats`` says how far it got.
"""

import sys
import threading
import time

from godottpd import EventHub, HttpRouter, HttpServer
from sse_common import BUDGET, HEARTBEAT, PAYLOAD, Publisher

hub = EventHub()
publisher = Publisher()


def publish(seconds: float, rate: float) -> None:
    publisher.started = time.monotonic()
    end = publisher.started + seconds
    number = 0
    subscribers = len(hub)
    while (now := time.monotonic()) < end:
        if rate:
            due = publisher.started + number / rate
            if due > now:
                time.sleep(due - now)
        number += 1
        delivered = hub.publish(PAYLOAD, id=f"{number:010d}")
        publisher.published, publisher.dropped = number, subscribers - delivered
    publisher.finished = time.monotonic()
    publisher.running = False


class Events(HttpRouter):
    def handle_get(self, request, response):
        hub.subscribe(response, heartbeat=HEARTBEAT)


class Start(HttpRouter):
    def handle_get(self, request, response):
        seconds = float(request.query.get("seconds", 10))
        rate = float(request.query.get("rate", 0))
        publisher.running = True
        threading.Thread(target=publish, args=(seconds, rate), daemon=True).start()
        response.send(200, "started", "text/plain")


class Stats(HttpRouter):
    def handle_get(self, request, response):
        response.send_raw(200, publisher.stats(len(hub)), "application/json")


server = HttpServer(
    int(sys.argv[1]), bind_address="127.0.0.1", max_connections=20000, stream_buffer=BUDGET
)
server.register_router("/events", Events())
server.register_router("/start", Start())
server.register_router("/stats", Stats())
server.serve_forever()
