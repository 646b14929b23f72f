"""The README's first program: a greeting route and a JSON echo, on port 8080."""

from __future__ import annotations

import logging

from godottpd import HttpRequest, HttpResponse, HttpRouter, HttpServer


class Hello(HttpRouter):
    def handle_get(self, request: HttpRequest, response: HttpResponse) -> None:
        response.send(200, f"Hello, {request.parameters['name']}!", "text/plain")

    def handle_post(self, request: HttpRequest, response: HttpResponse) -> None:
        response.json(201, {"got": request.get_body_parsed()})


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    server = HttpServer(port=8080)
    server.register_router("/hello/:name", Hello())
    print(f"Serving on http://localhost:{server.port}/hello/world (Ctrl-C stops)")
    server.serve_forever()


if __name__ == "__main__":
    main()
