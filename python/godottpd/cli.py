"""``python -m godottpd``: serve a folder over HTTP, like ``python -m http.server``.

Everything is answered by the Rust core (no Python runs per request); one access-log line
per request goes to the ``godottpd.access`` logger, printed on stderr unless ``--quiet``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from godottpd import _signals
from godottpd._godottpd import HttpFileRouter, HttpServer

DEFAULT_PORT = 8000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m godottpd",
        description=(
            "Serve a folder over HTTP/1.1: streamed files, ETag/Last-Modified and 304, "
            "byte ranges, precompressed .br/.gz siblings, a full MIME table (wasm included). "
            "No request can reach anything outside the folder. Stop with Ctrl-C."
        ),
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=".",
        metavar="DIR",
        help="the folder to serve (default: the current folder)",
    )
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the port to listen on (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "-b",
        "--bind",
        default="*",
        metavar="ADDR",
        help='the address to listen on (default: "*", every IPv4 and IPv6 address)',
    )
    parser.add_argument(
        "--cross-origin-isolation",
        action="store_true",
        help=(
            "send Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: "
            "require-corp and Cross-Origin-Resource-Policy: same-origin, so that pages are "
            "crossOriginIsolated (needed by Godot web exports with threads)"
        ),
    )
    parser.add_argument(
        "--index",
        default="index.html",
        metavar="PAGE",
        help="the page served for a folder's URL (default: index.html)",
    )
    parser.add_argument(
        "--fallback",
        default="",
        metavar="PAGE",
        help=(
            "the page served when no file matches, for single-page apps: with 200 when it "
            "is the index page, else with 404"
        ),
    )
    parser.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help='allow cross-origin requests from ORIGIN (repeatable; "*" for any origin)',
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not log one line per request on stderr"
    )
    return parser


def _url(bind: str, port: int) -> str:
    if bind in ("*", "0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in bind and not bind.startswith("["):
        host = f"[{bind}]"
    else:
        host = bind
    return f"http://{host}:{port}/"


def _configure_access_log(quiet: bool) -> None:
    access = logging.getLogger("godottpd.access")
    if quiet:
        access.disabled = True
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (0 after Ctrl-C or SIGTERM)."""
    parser = _parser()
    args = parser.parse_args(argv)
    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory):
        parser.error(f"{args.directory!r} is not a folder")
    if not 0 <= args.port <= 65535:
        parser.error(f"port must be in 0..65535, not {args.port}")
    try:
        router = HttpFileRouter(
            directory,
            index_page=args.index,
            fallback_page=args.fallback,
            cross_origin_isolation=args.cross_origin_isolation,
        )
        server = HttpServer(port=args.port, bind_address=args.bind, access_log=not args.quiet)
        server.register_router("/", router)
        if args.cors:
            server.enable_cors(args.cors, "GET, HEAD, OPTIONS")
    except ValueError as error:
        parser.error(str(error))
    _configure_access_log(args.quiet)
    try:
        server.start()
    except OSError as error:
        print(f"godottpd: {error}", file=sys.stderr)
        return 1
    previous = None
    # From the moment the server runs, Ctrl-C and SIGTERM mean "stop", wherever they land
    # (even while the URL line below is blocked on a full stdout pipe).
    try:
        previous = _signals.install()
        print(
            f"Serving {directory} at {_url(args.bind, server.port)} (press Ctrl-C to stop)",
            flush=True,
        )
        server.serve_forever()
    except (KeyboardInterrupt, _signals.Terminated):
        pass
    finally:
        server.stop()
        _signals.restore(previous)
    return 0
