"""``python -m godottpd``: serve a folder over HTTP or HTTPS, like ``python -m http.server``.

Everything is answered by the Rust core (no Python runs per request); one access-log line
per request goes to the ``godottpd.access`` logger, printed on stderr unless ``--quiet``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import ssl
import sys
from collections.abc import Sequence

from godottpd import _signals
from godottpd._godottpd import (
    HttpFileRouter,
    HttpServer,
    __version__,
    _machine_addresses,
    self_signed_certificate,
)

DEFAULT_PORT = 8000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m godottpd",
        description=(
            "Serve a folder over HTTP/1.1 (or HTTPS): streamed files, ETag/Last-Modified and 304, "
            "byte ranges, precompressed .br/.gz siblings, a full MIME table (wasm included). "
            "No request can reach anything outside the folder. Stop with Ctrl-C."
        ),
    )
    parser.add_argument("--version", action="version", version=f"godottpd {__version__}")
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
        "--cache-control",
        default="no-cache",
        metavar="VALUE",
        help=(
            'the Cache-Control header of every answer (default: "no-cache": browsers '
            "revalidate each time, which a 304 makes cheap, so a re-exported game is never "
            'stale); "" sends none'
        ),
    )
    parser.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help='allow cross-origin requests from ORIGIN (repeatable; "*" for any origin)',
    )
    tls = parser.add_argument_group(
        "HTTPS", "serve HTTPS only (TLS 1.2 and 1.3): with your certificate, or a self-signed one"
    )
    tls.add_argument(
        "--tls-cert", metavar="FILE", help="the certificate chain (PEM), with --tls-key"
    )
    tls.add_argument("--tls-key", metavar="FILE", help="the private key (PEM) of --tls-cert")
    tls.add_argument(
        "--tls-self-signed",
        action="store_true",
        help=(
            "serve with a self-signed certificate for this machine's names and addresses, "
            "made once and kept in the per-user cache folder; prints its SHA-256 fingerprint"
        ),
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=(
            "serve with N worker processes sharing the port (SO_REUSEPORT), restarted if "
            "they die; 0 means one per core (default: 1, no extra process)"
        ),
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="the Rust I/O threads per process, which serve files on N cores (default: 1)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help=(
            "believe Forwarded / X-Forwarded-* from this address or network (repeatable; "
            '"*" for any)'
        ),
    )
    parser.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="every connection starts with a PROXY protocol v1 or v2 header (HAProxy, cloud LBs)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not log one line per request on stderr"
    )
    return parser


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def _url(bind: str, port: int, scheme: str = "http") -> str:
    host = "localhost" if bind in ("*", "0.0.0.0", "::", "") else _host(bind)
    return f"{scheme}://{host}:{port}/"


def _other_urls(bind: str, port: int, scheme: str) -> list[str]:
    """The URLs another device can type: one per address of this machine, when every
    address is served (IPv6 only where the socket takes it)."""
    if bind not in ("*", "0.0.0.0", "::", ""):
        return []
    addresses = _machine_addresses()
    if bind == "0.0.0.0":
        addresses = [a for a in addresses if ":" not in a]
    return [f"{scheme}://{_host(address)}:{port}/" for address in addresses]


def _banner(
    tail: str, directory: str, bind: str, port: int, server: HttpServer, cert: str | None
) -> list[str]:
    """What the command prints once it serves: the URL, and with TLS one URL per address of
    the machine (for another device to type), the certificate and its fingerprint."""
    scheme = server.scheme
    lines = [f"Serving {directory} at {_url(bind, port, scheme)} {tail}"]
    if cert is not None:
        lines += [f"  also at {url}" for url in _other_urls(bind, port, scheme)]
        lines.append(f"Certificate {cert}")
        lines.append(f"  SHA-256 fingerprint {fingerprint(cert)}")
    return lines


def fingerprint(cert_path: str) -> str:
    """The SHA-256 fingerprint of the first certificate in ``cert_path``, as browsers show
    it (colon-separated hex pairs)."""
    with open(cert_path, encoding="ascii") as file:
        pem = file.read()
    end = "-----END CERTIFICATE-----"
    first = pem[: pem.index(end) + len(end)] + "\n"
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


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


def _systemd_socket() -> int | None:
    """The socket systemd passed (socket activation: ``LISTEN_PID`` is this process and
    ``LISTEN_FDS`` at least 1; the first one is descriptor 3), or ``None``. The variables
    are removed, as ``sd_listen_fds(1)`` does, so that child processes do not take them."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return 3 if count >= 1 else None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (0 after Ctrl-C or SIGTERM)."""
    parser = _parser()
    args = parser.parse_args(argv)
    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory):
        parser.error(f"{args.directory!r} is not a folder")
    if not 0 <= args.port <= 65535:
        parser.error(f"port must be in 0..65535, not {args.port}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, not {args.workers}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, not {args.threads}")
    if args.tls_self_signed and (args.tls_cert or args.tls_key):
        parser.error("--tls-self-signed makes its own certificate: drop --tls-cert/--tls-key")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    cert, key = args.tls_cert, args.tls_key
    if args.tls_self_signed:
        try:
            cert, key = self_signed_certificate()
        except (OSError, ValueError) as error:
            parser.error(f"cannot make a self-signed certificate: {error}")
    try:
        router = HttpFileRouter(
            directory,
            index_page=args.index,
            fallback_page=args.fallback,
            cross_origin_isolation=args.cross_origin_isolation,
            cache_control=args.cache_control or None,
        )
        server = HttpServer(
            port=args.port,
            bind_address=args.bind,
            access_log=not args.quiet,
            io_threads=args.threads,
            trusted_proxies=args.trusted_proxy,
            proxy_protocol=args.proxy_protocol,
            socket=_systemd_socket(),
            tls_cert=cert,
            tls_key=key,
        )
        server.register_router("/", router)
        if args.cors:
            server.enable_cors(args.cors, "GET, HEAD, OPTIONS")
    except ValueError as error:
        parser.error(str(error))
    _configure_access_log(args.quiet)
    if args.workers != 1:
        return _serve_workers(server, args.workers, directory, args.bind, args.quiet, cert)
    try:
        server.start()
    except OSError as error:
        print(f"godottpd: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        server.stop()
        return 0
    previous = None
    # From the moment the server runs, Ctrl-C and SIGTERM mean "stop", wherever they land
    # (even while the URL line below is blocked on a full stdout pipe).
    try:
        previous = _signals.install()
        lines = _banner("(press Ctrl-C to stop)", directory, args.bind, server.port, server, cert)
        print("\n".join(lines), flush=True)
        server.serve_forever()
    except (KeyboardInterrupt, _signals.Terminated):
        pass
    finally:
        server.stop()
        _signals.restore(previous)
    return 0


def _serve_workers(
    server: HttpServer, workers: int, directory: str, bind: str, quiet: bool, cert: str | None
) -> int:
    """``--workers N``: the supervisor; returns 0 once every worker has stopped."""
    supervisor_log = logging.getLogger("godottpd")
    if not quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("godottpd: %(message)s"))
        supervisor_log.addHandler(handler)
        supervisor_log.setLevel(logging.INFO)
    try:
        port = server._prepare_workers()
    except (OSError, RuntimeError) as error:
        print(f"godottpd: {error}", file=sys.stderr)
        return 1
    count = workers or len(os.sched_getaffinity(0))
    print(
        "\n".join(
            _banner(
                f"with {count} workers (press Ctrl-C to stop)", directory, bind, port, server, cert
            )
        ),
        flush=True,
    )
    try:
        server.serve_forever(workers=workers)
    except OSError as error:
        print(f"godottpd: {error}", file=sys.stderr)
        return 1
    return 0
