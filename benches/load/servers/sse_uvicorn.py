"""A plain ASGI app (run by uvicorn) in the SSE fan-out benchmark: a queue per subscriber,
its request's task sending what the queue gets, one publish loop putting each event into
every queue, a subscriber with a full queue dropped; as sse_granian.py, in ASGI.
"""

import asyncio

from sse_common import QUEUE_EVENTS, Publisher, next_event, publish, query_float

HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
subscribers: set[asyncio.Queue] = set()
publisher = Publisher()
tasks = set()


async def answer(send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path, query = scope["path"], scope["query_string"].decode()
    if path == "/events":
        queue: asyncio.Queue = asyncio.Queue(QUEUE_EVENTS)
        subscribers.add(queue)
        await send({"type": "http.response.start", "status": 200, "headers": HEAD})
        try:
            while True:
                data = await next_event(queue)
                if data is None:
                    break
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            pass  # the client left
        finally:
            subscribers.discard(queue)
    elif path == "/start":
        publisher.running = True
        task = asyncio.ensure_future(
            publish(
                subscribers,
                publisher,
                query_float(query, "seconds", 10),
                query_float(query, "rate", 0),
            )
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await answer(send, 200, b"text/plain", b"started")
    elif path == "/stats":
        await answer(send, 200, b"application/json", publisher.stats(len(subscribers)))
    else:
        await answer(send, 404, b"text/plain", b"not found")
