"""The README's first program: a greeting route and a JSON echo (``--port``, 8080 by default)."""

from __future__ import annotations

import argparse
import logging

from godottpd import HttpRequest, HttpResponse, HttpRouter, HttpServer


class Hello(HttpRouter):
    def handle_get(self, request: HttpRequest, response: HttpResponse) -> None:
        response.send(200, f"Hello, {request.parameters['name']}!", "text/plain")

    def handle_post(self, request: HttpRequest, response: HttpResponse) -> None:
        response.json(201, {"got": request.get_body_parsed()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    server = HttpServer(port=args.port)
    server.register_router("/hello/:name", Hello())
    try:
        server.start()  # binds now, so server.port is the real port even for --port 0
        print(f"Serving on http://localhost:{server.port}/hello/world (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C: serve_forever() has stopped the server gracefully
    finally:
        server.stop()


if __name__ == "__main__":
    main()
