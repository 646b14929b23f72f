"""godottpd: a fast, strict HTTP/1.1 server for Python with a Rust core.

It keeps the API of GodotTPD, the Godot engine's small HTTP server: register
``HttpRouter`` subclasses on an ``HttpServer`` and answer through ``HttpResponse``.
"""

from collections.abc import Mapping

from godottpd._body import FormPart
from godottpd._godottpd import (
    BadRequest,
    Client,
    EventHub,
    EventStream,
    Headers,
    HttpFileRouter,
    HttpRequest,
    HttpResponse,
    HttpRouter,
    HttpServer,
    HttpStream,
    __version__,
    self_signed_certificate,
)

Mapping.register(Headers)

__all__ = [
    "BadRequest",
    "Client",
    "EventHub",
    "EventStream",
    "FormPart",
    "Headers",
    "HttpFileRouter",
    "HttpRequest",
    "HttpResponse",
    "HttpRouter",
    "HttpServer",
    "HttpStream",
    "__version__",
    "self_signed_certificate",
]
