"""HTTPS with a self-signed certificate: ``request.scheme`` and a certificate reload on SIGHUP.

``python examples/https.py`` serves https://localhost:8443/ (``--port``); your browser asks
once to accept the certificate, which is kept in the per-user cache folder and reused.
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from godottpd import HttpRequest, HttpResponse, HttpRouter, HttpServer, self_signed_certificate


class Scheme(HttpRouter):
    def handle_get(self, request: HttpRequest, response: HttpResponse) -> None:
        response.send(200, f"Hello over {request.scheme}!", "text/plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    args = parser.parse_args()
    cert, key = self_signed_certificate()
    server = HttpServer(port=args.port, tls_cert=cert, tls_key=key)
    server.register_router("/", Scheme())

    def reload(signum: int, frame: FrameType | None) -> None:
        server.reload_tls()  # new connections get the files' new contents

    signal.signal(signal.SIGHUP, reload)
    try:
        server.start()
        print(f"Serving on https://localhost:{server.port}/ (certificate {cert})", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
