"""granian (RSGI) in the SSE fan-out benchmark, as its users write fan-out: an asyncio
queue per subscriber, its ``response_stream`` task sending what the queue gets, and one
publish loop on the same event loop putting each event into every queue. A subscriber
whose queue is full (``SSE_BUDGET`` bytes of events behind, as godottpd's
``stream_buffer``) is dropped, as ``EventHub`` drops one. Run by granian --interface rsgi.
"""

import asyncio

from sse_common import QUEUE_EVENTS, Publisher, next_event, publish, query_float

HEADERS = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
subscribers: set[asyncio.Queue] = set()
publisher = Publisher()


async def stream(proto) -> None:
    queue: asyncio.Queue = asyncio.Queue(QUEUE_EVENTS)
    subscribers.add(queue)
    transport = proto.response_stream(200, HEADERS)
    try:
        while True:
            data = await next_event(queue)
            if data is None:
                return
            await transport.send_bytes(data)
    except Exception:
        pass  # the client left
    finally:
        subscribers.discard(queue)


tasks = set()


async def app(scope, proto):
    if scope.path == "/events":
        await stream(proto)
    elif scope.path == "/start":
        seconds = query_float(scope.query_string, "seconds", 10)
        rate = query_float(scope.query_string, "rate", 0)
        publisher.running = True
        task = asyncio.ensure_future(publish(subscribers, publisher, seconds, rate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        proto.response_str(200, [("content-type", "text/plain")], "started")
    elif scope.path == "/stats":
        body = publisher.stats(len(subscribers))
        proto.response_bytes(200, [("content-type", "application/json")], body)
    else:
        proto.response_str(404, [], "not found")
