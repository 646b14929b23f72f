"""socketify in the SSE fan-out benchmark, as its users stream to many clients: each
subscriber's response kept open in a set (``on_aborted`` removes it), and one publish loop
(a coroutine on socketify's loop) calling ``res.write`` on every response; uWS writes at
once what the socket takes and buffers the rest in memory. No subscriber is dropped for
being slow: ``res.write`` gives the caller no backpressure signal (socketify drops uWS's
return value), so the loop cannot tell a slow subscriber from a fast one.

Usage: python sse_socketify.py PORT
"""

import asyncio
import sys
import time

from socketify import App, AppListenOptions
from sse_common import Publisher, event, query_float

app = App()
subscribers: set = set()
publisher = Publisher()


def events(res, req):
    res.write_status(200)
    res.write_header("Content-Type", "text/event-stream")
    res.write_header("Cache-Control", "no-cache")
    res.write(b":\n\n")  # a comment: uWS sends the head with the first write
    subscribers.add(res)
    res.on_aborted(subscribers.discard)


async def publish(seconds, rate):
    publisher.started = time.monotonic()
    end = publisher.started + seconds
    number = 0
    while (now := time.monotonic()) < end:
        due = publisher.started + number / rate if rate else now
        await asyncio.sleep(max(0.0, due - now))  # sleep(0): uWS runs its loop once
        number += 1
        data = event(number)
        for res in list(subscribers):
            res.write(data)
        publisher.published = number
    publisher.finished = time.monotonic()
    publisher.running = False


def start(res, req):
    query = req.get_full_url().partition("?")[2]
    seconds, rate = query_float(query, "seconds", 10), query_float(query, "rate", 0)
    publisher.running = True
    app.loop.ensure_future(publish(seconds, rate))
    res.end("started")


def stats(res, req):
    res.write_header("Content-Type", "application/json")
    res.end(publisher.stats(len(subscribers)))


app.get("/events", events)
app.get("/start", start)
app.get("/stats", stats)
app.listen(AppListenOptions(port=int(sys.argv[1]), host="127.0.0.1"))
app.run()
