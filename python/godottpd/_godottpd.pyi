"""The Rust core of godottpd: sockets, parsing, routing and response encoding."""

import asyncio
import os
import socket as _socket
from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, final

from typing_extensions import Self, disjoint_base

__version__: str

class BadRequest(ValueError):
    """The request is malformed: a body that does not decode, a field a handler refuses.

    ``get_body_parsed()`` raises it for a malformed body; handlers may raise it themselves.
    One that escapes a handler answers ``400 Bad Request`` with its message as the body.
    """

@final
class Client:
    """The peer of a connection."""

    @property
    def host(self) -> str:
        """The client's IP address: the peer's, or the one a trusted proxy or the PROXY
        protocol header names."""
    @property
    def port(self) -> int:
        """The client's port (0 when a proxy named the client without one)."""
    @property
    def is_open(self) -> bool:
        """Whether the connection is still open."""
    def wait_closed(self) -> asyncio.Future[None]:
        """In a coroutine handler: ``await client.wait_closed()`` returns once the connection
        has closed (the client left, or the server closed it)."""

@final
class Headers:
    """A request's header fields: a read-only, case-insensitive mapping.

    ``headers[name]`` joins the values of a repeated field with ``", "`` (RFC 9110 §5.3);
    ``get_all(name)`` gives each value separately. Iteration yields lowercased names.
    """

    def __getitem__(self, name: str, /) -> str: ...
    def __contains__(self, name: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def get(self, name: str, default: Any = None) -> Any:
        """The combined value of ``name``, or ``default`` when it is absent."""
    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, one per field line, in the order received."""
    def keys(self) -> list[str]: ...
    def values(self) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...

@final
class HttpRequest:
    """A request, as handed to a router's ``handle_*`` method."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str:
        """The percent-decoded path, without the query."""
    @property
    def http_version(self) -> str:
        """``"HTTP/1.1"`` or ``"HTTP/1.0"``."""
    @property
    def headers(self) -> Headers: ...
    @property
    def body(self) -> bytes:
        """The body, exactly as sent (a chunked body decoded). Raises ``RuntimeError`` for a
        router with ``stream_body = True``: use ``stream()`` or ``save()`` there."""
    @property
    def text(self) -> str:
        """The body decoded as text by the charset of its ``Content-Type`` (UTF-8 when it
        names none). Raises ``BadRequest`` when the body is not text in that charset.
        """
    @property
    def query(self) -> dict[str, str]:
        """The decoded query; for a repeated key the last value wins."""
    def query_all(self, name: str) -> list[str]:
        """Every value of the query key ``name``, in order; empty when absent."""
    @property
    def parameters(self) -> dict[str, str]:
        """The path parameters the route captured."""
    @property
    def client(self) -> Client:
        """The client; behind a trusted proxy, the rightmost untrusted address of
        ``Forwarded`` or ``X-Forwarded-For`` (malformed values are ignored)."""
    @property
    def scheme(self) -> str:
        """``"https"`` when the request came over TLS, else ``"http"``; behind a trusted proxy,
        what it reports (``Forwarded: proto=``, ``X-Forwarded-Proto``)."""
    @property
    def host(self) -> str:
        """The host the request is for, as ``host[:port]``: the authority of an absolute-form
        target, else the ``Host`` header (RFC 9112 §3.2.2), or what a trusted proxy reports
        (``Forwarded: host=``, ``X-Forwarded-Host``); empty when there is none."""
    def get_body_parsed(self) -> Any:
        """The body decoded by its content type.

        JSON for ``application/json``, a ``dict`` for
        ``application/x-www-form-urlencoded``, a list of ``FormPart`` for
        ``multipart/form-data``; ``None`` for other types or an empty body. Raises
        ``BadRequest`` (a ``ValueError``) when the body does not decode; escaping the
        handler, it answers ``400``.
        """
    def get_cookies(self) -> dict[str, str]:
        """The cookies the request carries."""
    def stream(self) -> BodyStream:
        """The body as it arrives, for a router with ``stream_body = True``: an iterator of
        ``bytes`` pieces. The first read sends ``100 Continue`` to a client that waits for
        it. A read raises ``BadRequest`` (its ``status`` is ``408`` for a client that stalls,
        ``413`` past ``max_body_size``) or ``ConnectionError`` (the client left)."""
    def form(self) -> FormFields:
        """The parts of a ``multipart/form-data`` body as they arrive, an iterator of
        ``FormField``: with ``stream_body = True`` a file part of any size is saved with
        bounded memory (``field.save(path)``). Raises ``BadRequest`` for another content
        type or a malformed form, and as ``stream()`` does."""
    def save(self, path: str | os.PathLike[str]) -> int:
        """Writes the rest of a streamed body (``stream_body = True``) to the file ``path``
        as it arrives, with bounded memory, and returns the number of bytes written. Raises
        as ``stream()`` does, or ``OSError``."""

@final
class BodyStream:
    """A streamed request body, read piece by piece: ``for piece in request.stream(): ...``."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> bytes: ...

@final
class FormFields:
    """The parts of a ``multipart/form-data`` body, in order, as they arrive:
    ``for field in request.form(): ...``. Reading the next one skips what is left of the
    one before."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> FormField: ...

@final
class FormField:
    """One part of a ``multipart/form-data`` body: its ``name``, ``filename`` and
    ``content_type`` (each ``None`` when absent), and its data, read once with ``read()``
    or ``save(path)``."""

    @property
    def name(self) -> str | None:
        """The ``name`` of its ``Content-Disposition``."""
    @property
    def filename(self) -> str | None:
        """The ``filename`` of its ``Content-Disposition`` (a file part has one)."""
    @property
    def content_type(self) -> str | None:
        """Its ``Content-Type``."""
    def read(self) -> bytes:
        """The rest of its data, whole: for small fields (a file part is better saved)."""
    def save(self, path: str | os.PathLike[str]) -> int:
        """Writes the rest of its data to the file ``path`` as it arrives, with bounded
        memory; returns the number of bytes written."""

@final
class HttpResponse:
    """The response to one request; send it once with ``send``, ``send_raw`` or ``json``."""

    @property
    def client(self) -> Client:
        """The connection this response goes to."""
    @property
    def server_identifier(self) -> str:
        """Sent as ``Server``; an empty string sends no ``Server`` header."""
    @server_identifier.setter
    def server_identifier(self, value: str) -> None: ...
    @property
    def headers(self) -> dict[str, str]:
        """The headers to send; live, so entries assigned here are sent too."""
    @property
    def cookies(self) -> list[str]:
        """The ``Set-Cookie`` values to send, one line each."""
    @property
    def is_sent(self) -> bool:
        """Whether the response has been sent."""
    def send_raw(
        self,
        status_code: int,
        data: bytes | bytearray | memoryview | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Sends a bytes-like body as it is."""
    def send(
        self, status_code: int, data: str | None = None, content_type: str = "text/html"
    ) -> None:
        """Sends a ``str`` body, UTF-8 encoded; ``text/*`` types get ``; charset=utf-8``."""
    def json(self, status_code: int, data: dict[Any, Any] | list[Any]) -> None:
        """Sends a dict or a list as ``application/json``."""
    def set(self, field: str, value: str | int | float) -> None:
        """Sets a header, replacing any of the same name (case-insensitive)."""
    def cookie(self, name: str, value: str, options: dict[str, Any] | None = None) -> None:
        """Adds a cookie, sent as its own ``Set-Cookie`` line.

        Options as GodotTPD spells them or in Python's spelling: ``domain``, ``path``,
        ``expires`` (a ``datetime``, a Unix time or an HTTP date), ``max-age``/``max_age``
        (an ``int`` or a string of digits), ``secure``, ``httpOnly``/``http_only``
        (``True`` or ``"true"``), ``sameSite``/``same_site`` (``"Strict"``, ``"Lax"``,
        ``"None"``, or ``True`` for Strict), ``partitioned`` (needs ``secure``). A bad
        name, value or option, or an unknown option, is a ``ValueError``.
        """
    def stream(
        self, status_code: int, content_type: str = "application/octet-stream"
    ) -> HttpStream:
        """Sends the head now and returns the body's ``HttpStream`` (chunked on HTTP/1.1,
        close-delimited on HTTP/1.0, no body for HEAD)."""
    def event_stream(self, heartbeat: float | None = 15.0) -> EventStream:
        """Starts a Server-Sent Events response (``text/event-stream``, ``Cache-Control:
        no-cache``); a comment goes out after ``heartbeat`` idle seconds."""
    def send_file(self, path: str | os.PathLike[str], content_type: str | None = None) -> None:
        """Sends a file as ``HttpFileRouter`` does: validators, 304, Range, HEAD, sendfile;
        the type from the name unless ``content_type`` is given."""

@final
class HttpStream:
    """A response body sent as it is written; from any thread."""

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Queues ``data`` (``str`` as UTF-8) and returns; past ``stream_buffer`` queued bytes
        it waits, without the interpreter lock, for the client to catch up. Raises
        ``ConnectionError`` once the client is gone, ``ValueError`` after ``close()``."""
    def close(self) -> None:
        """Ends the body; idempotent. A stream dropped unclosed is closed for you."""
    def drain(self) -> asyncio.Future[None]:
        """In a coroutine handler: ``await stream.drain()`` waits until no more than
        ``stream_buffer`` bytes wait for the client (``write()`` on the event loop never
        blocks). Raises ``ConnectionError`` once the client is gone."""
    @property
    def closed(self) -> bool:
        """Whether the stream is closed, or its client gone."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> bool: ...

@final
class EventStream:
    """A Server-Sent Events stream (WHATWG event-stream format)."""

    def send(
        self,
        data: str | dict[Any, Any] | list[Any],
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Sends one event; multi-line ``data`` becomes one ``data:`` line each, a dict or a
        list is sent as JSON. CR, LF or NUL in ``event`` or ``id`` is a ``ValueError``;
        ``retry`` is in milliseconds. Raises ``ConnectionError`` once the client is gone."""
    def comment(self, text: str) -> None:
        """Sends a comment line (ignored by clients)."""
    def close(self) -> None:
        """Ends the stream; idempotent."""
    def drain(self) -> asyncio.Future[None]:
        """In a coroutine handler: ``await events.drain()`` waits until no more than
        ``stream_buffer`` bytes wait for the client (``send()`` on the event loop never
        blocks). Raises ``ConnectionError`` once the client is gone."""
    @property
    def closed(self) -> bool:
        """Whether the stream is closed, or its client gone."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> bool: ...

@final
class EventHub:
    """Fan-out of Server-Sent Events in Rust: one ``publish()`` reaches every subscriber."""

    def __new__(cls) -> Self: ...
    def subscribe(self, response: HttpResponse, heartbeat: float | None = 15.0) -> EventStream:
        """Starts an event stream on ``response`` and keeps it; the returned stream sends to
        this subscriber alone (dropping it leaves the subscription on)."""
    def publish(
        self,
        data: str | dict[Any, Any] | list[Any],
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> int:
        """Encodes the event once and queues the same bytes for every subscriber; one that
        left, or is more than ``stream_buffer`` behind, is dropped. Returns how many took it."""
    def close(self) -> None:
        """Ends every subscriber's stream."""
    # len(hub): the subscribers still connected (a slot: its docstring cannot be set).
    def __len__(self) -> int: ...

@disjoint_base
class HttpRouter:
    """Base class of request handlers: override any ``handle_*`` method.

    The inherited methods answer ``405 Method Not Allowed`` with an ``Allow`` header.
    """

    stream_body: ClassVar[bool]
    def __new__(cls, *args: Any, **kwargs: Any) -> Self: ...
    def handle_get(self, request: HttpRequest, response: HttpResponse) -> None: ...
    def handle_head(self, request: HttpRequest, response: HttpResponse) -> None: ...
    def handle_post(self, request: HttpRequest, response: HttpResponse) -> None: ...
    def handle_put(self, request: HttpRequest, response: HttpResponse) -> None: ...
    def handle_patch(self, request: HttpRequest, response: HttpResponse) -> None: ...
    def handle_delete(self, request: HttpRequest, response: HttpResponse) -> None: ...
    def handle_options(self, request: HttpRequest, response: HttpResponse) -> None: ...

@final
class HttpFileRouter(HttpRouter):
    """Serves a folder, and everything below it, from the prefix it is registered at.

    Answered entirely in Rust: files are streamed with ``sendfile``, with ``ETag``,
    ``Last-Modified``, ``304``, single ranges and precompressed ``.br``/``.gz`` siblings.
    No request can reach anything outside the folder (such requests get 404), and ``.gd``
    files (Godot scripts) are never served.

    The second positional argument may be GodotTPD's options dictionary
    (``{"index_page": ..., "fallback_page": ..., "extensions": [...],
    "exclude_extensions": [...]}``, plus ``cross_origin_isolation`` and ``cache_control``);
    a key given both there and as a keyword is a ``TypeError``, an unknown key a
    ``ValueError``. A missing folder raises ``FileNotFoundError`` naming it.
    """

    def __new__(
        cls,
        path: str | os.PathLike[str],
        index_page: str | dict[str, Any] = "index.html",
        fallback_page: str = "",
        extensions: Sequence[str] = ...,  # ["html"]
        exclude_extensions: Sequence[str] = ...,  # []
        cross_origin_isolation: bool = False,
        cache_control: str | None = None,
    ) -> Self: ...
    @property
    def path(self) -> str:
        """The served folder, as given."""
    @property
    def index_page(self) -> str:
        """Served for a folder's URL (ending in ``/``)."""
    @property
    def fallback_page(self) -> str:
        """Served when nothing matches: 200 if it is the index page, else 404."""
    @property
    def extensions(self) -> list[str]:
        """Tried, in order, on a path without an extension (``/about`` → ``about.html``)."""
    @property
    def exclude_extensions(self) -> list[str]:
        """Files with these extensions are never served (404); nor are ``.gd`` files, always."""
    @property
    def cross_origin_isolation(self) -> bool:
        """Whether COOP/COEP/CORP headers are sent (``crossOriginIsolated`` pages)."""
    @property
    def cache_control(self) -> str | None:
        """The ``Cache-Control`` value sent with every answer, or ``None`` for no header."""

@final
class HttpServer:
    """An HTTP/1.1 server. ``start()`` returns at once; the server runs on its own threads.

    ``port`` is an ``int`` (a ``bool`` is a ``TypeError``), 0 picks a free port. Limits, past
    which the client gets 414, 431, 413, 408 or 503 and the server carries on:
    ``max_request_line`` (8192), ``max_head_size`` (16384), ``max_headers`` (100, at most
    256), ``max_body_size`` (10 MiB), ``header_timeout`` (10 s), ``body_timeout`` (30 s),
    ``keepalive_timeout`` (5 s), ``write_timeout`` (30 s), ``max_connections`` (1024).
    ``shutdown_grace`` (5 s) bounds ``stop()``; every timeout is at most 1e9 s.
    ``io_threads`` (1, at most 64) own the sockets; ``handler_threads`` (8, at most 256; 0
    runs handlers on the I/O thread) run Python; ``threaded=False`` runs them in ``poll()``.
    A value out of range is a ``ValueError`` naming the argument and its bound.
    ``min_body_rate`` (1024 bytes/s, 0: none) cuts a body that arrives slower on average once
    5 s have passed (408). ``trusted_proxies``: addresses or networks (``"10.0.0.0/8"``,
    ``"*"``) whose forwarding headers are believed. ``proxy_protocol``: every connection
    starts with a PROXY protocol v1/v2 header; one without is closed. ``socket``: serve
    this already-listening socket (or file descriptor) instead of binding.
    """

    def __new__(
        cls,
        port: int = 8080,
        bind_address: str = "*",
        server_identifier: str = "GodotTPD",
        *,
        threaded: bool = True,
        max_request_line: int = 8192,
        max_head_size: int = 16384,
        max_headers: int = 100,
        max_body_size: int = 10485760,
        header_timeout: float = 10.0,
        body_timeout: float = 30.0,
        keepalive_timeout: float = 5.0,
        write_timeout: float = 30.0,
        min_body_rate: int = 1024,
        max_connections: int = 1024,
        shutdown_grace: float = 5.0,
        io_threads: int = 1,
        handler_threads: int = 8,
        access_log: bool = False,
        trusted_proxies: Sequence[str] | None = None,
        proxy_protocol: bool = False,
        socket: _socket.socket | int | None = None,
        stream_buffer: int = 262144,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> Self: ...
    @property
    def proxy_protocol(self) -> bool:
        """Whether every connection must start with a PROXY protocol header."""
    @property
    def port(self) -> int:
        """The port; once started, the one actually bound."""
    @port.setter
    def port(self, port: int) -> None: ...
    @property
    def bind_address(self) -> str: ...
    @bind_address.setter
    def bind_address(self, bind_address: str) -> None: ...
    @property
    def server_identifier(self) -> str: ...
    @server_identifier.setter
    def server_identifier(self, identifier: str) -> None: ...
    @property
    def is_running(self) -> bool: ...
    def reload_tls(self) -> None:
        """Re-reads ``tls_cert`` and ``tls_key``; new connections use them, open ones carry on.

        Raises ``ValueError`` naming the file when one is missing, unreadable, not PEM, or
        the key does not match (the current certificate then stays), and ``RuntimeError``
        on a server without TLS.
        """
    @property
    def scheme(self) -> str:
        """``"https"`` for a server made with ``tls_cert`` and ``tls_key``, else ``"http"``."""
    @property
    def threaded(self) -> bool:
        """Whether handlers run on the server's thread (else in ``poll()``)."""
    def register_router(self, path: str, router: object) -> None:
        """Adds a route; the first registered match wins."""
    def enable_cors(
        self,
        allowed_origins: str | Sequence[str],
        access_control_allowed_methods: str = "POST, GET, OPTIONS",
        access_control_allowed_headers: str = "content-type",
    ) -> None:
        """Turns CORS on for the given origins (``"*"`` for all)."""
    def start(self) -> None:
        """Listens and serves; raises ``OSError`` if it cannot listen."""
    def stop(self) -> None:
        """Finishes in-flight requests (up to ``shutdown_grace``), then closes.

        Called on the server's event loop (from a coroutine handler, or beside ``serve()``)
        it cannot wait there: it starts the same graceful stop as a task and returns.
        """
    def poll(self, timeout: float = 0.0) -> int:
        """Runs waiting handlers on this thread (poll mode); returns how many ran."""
    def serve_forever(self, workers: int = 1) -> None:
        """Serves until ``stop()`` is called, Ctrl-C is pressed or SIGTERM arrives (both stop
        gracefully: Ctrl-C then raises ``KeyboardInterrupt``, SIGTERM returns normally).

        With ``workers`` other than 1 (0: one per core), forks that many worker processes
        serving the same port (``SO_REUSEPORT``), restarts one that dies, stops all
        gracefully on Ctrl-C or SIGTERM and returns when all have stopped. Call it instead
        of ``start()``, from the main thread, after registering the routes.
        """
    def _prepare_workers(self) -> int:
        """Before ``serve_forever(workers=N)``: reserves the workers' port; returns it."""
    def _serve_worker(self, supervisor: int) -> None:
        """In a forked worker: serves until SIGTERM, then ends the process."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool: ...
    def serve(self) -> Coroutine[Any, Any, None]:
        """Serves inside the running event loop until cancelled or stopped: coroutine handlers
        run on this loop as tasks. Cancelling it (Ctrl-C under ``asyncio.run``) stops the
        server gracefully, as ``stop()`` does."""
    def __aenter__(self) -> Coroutine[Any, Any, Self]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> Coroutine[Any, Any, bool]: ...
    def _attach_loop(self, event_loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Starts the server if needed and runs its coroutine handlers on ``event_loop`` (the
        running one); returns the future that completes when the server stops."""
    def _begin_stop(self) -> bool:
        """The first step of a graceful stop: refuse new connections; ``False`` if not running."""
    def _open_connections(self) -> int:
        """Connections still open (a stop waits for them, up to ``shutdown_grace``)."""
    def _finish_stop(self) -> None:
        """The last step of a graceful stop, once the connections are done or the grace over."""
    @property
    def _shutdown_grace(self) -> float:
        """``shutdown_grace`` in seconds."""
    def _event_loop_stats(self) -> tuple[int, int]:
        """``(wake-ups, jobs)`` of the event loop so far: requests per wake-up of the loop."""

def self_signed_certificate(
    names: Sequence[str] | None = None, folder: str | os.PathLike[str] | None = None
) -> tuple[str, str]:
    """Returns ``(cert_path, key_path)`` of a self-signed certificate for local HTTPS.

    It names ``localhost``, ``127.0.0.1``, ``::1``, this machine's host name and addresses,
    and ``names``. It is made once in ``folder`` (by default ``$XDG_CACHE_HOME/godottpd``
    or ``~/.cache/godottpd``) and reused while it is valid (397 days, renewed 30 days
    before) and covers every name, so that a browser's exception for it lasts. The key file
    is written with mode 0600. A name that is neither a DNS name nor an IP address is a
    ``ValueError``.
    """

def _machine_addresses() -> list[str]:
    """The addresses of this machine that another device can reach (no loopback)."""
