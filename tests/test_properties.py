"""Property tests: header and cookie validation, and round trips over the wire.

One server for the whole module. Each example sends its case as JSON to /case; the handler
calls set()/cookie() and answers "accepted" or "rejected:<ExceptionType>".
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
from godottpd import HttpRouter, HttpServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
# RFC 6265 cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
SERVER_OWNED = {
    "content-length",
    "transfer-encoding",
    "date",
    "server",
    "content-type",
    "connection",
    "set-cookie",
    "keep-alive",
}

PROPS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class CaseRouter(HttpRouter):
    def handle_post(self, request: Any, response: Any) -> None:
        case = json.loads(request.body)
        try:
            if case["kind"] == "header":
                response.set(case["name"], case["value"])
            else:
                response.cookie(case["name"], case["value"])
        except Exception as exc:
            kind = "ValueError" if isinstance(exc, ValueError) else type(exc).__name__
            response.send(200, f"rejected:{kind}", "text/plain")
            return
        response.send(200, "accepted", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    srv = HttpServer(port=0, bind_address="127.0.0.1", shutdown_grace=2.0)
    srv.register_router("/case", CaseRouter())
    srv.start()
    yield srv
    srv.stop()


def _run(server: HttpServer, raw: Any, build: Any, kind: str, name: str, value: str) -> Any:
    body = json.dumps({"kind": kind, "name": name, "value": value}).encode()
    c = raw(server)
    r = c.request(build("POST", "/case", {"Content-Type": "application/json"}, body))
    c.close()
    assert r.status == 200, r
    return r


# --------------------------------------------------------------------------- #
# Strategies
# --------------------------------------------------------------------------- #

token = st.text(alphabet=TCHAR, min_size=1, max_size=30)
header_name = token.filter(lambda s: s.lower() not in SERVER_OWNED)

# RFC 9110 §5.5: a field value is visible characters, obs-text, SP and HTAB; every other
# control character (CR, LF and NUL among them, and DEL) is refused, as hyper and h11 do.
# Any text without those (and without lone surrogates, which are not text on any wire).
field_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t"),
    max_size=60,
)
ascii_field_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, whitelist_characters="\t"),
    max_size=60,
)

bad_name = st.text(max_size=20).filter(lambda s: s == "" or any(c not in TCHAR for c in s))

bad_value = st.builds(
    lambda a, bad, b: a + bad + b,
    st.text(max_size=15),
    st.sampled_from(["\r", "\n", "\x00", "\r\n", "\x01", "\x1f", "\x7f"]),
    st.text(max_size=15),
)

cookie_value = st.text(alphabet=COOKIE_OCTETS, max_size=40)
bad_cookie_value = st.builds(
    lambda a, bad, b: a + bad + b,
    cookie_value,
    st.sampled_from([";", ",", " ", "\\", "\r", "\n", "\x00", "\t", "\x7f", "é", "\x01"]),
    cookie_value,
)


def _wire_values(r: Any, name: str) -> list[str]:
    return r.get_all(name)


# --------------------------------------------------------------------------- #
# Headers
# --------------------------------------------------------------------------- #


@PROPS
@given(name=header_name, value=ascii_field_value)
def test_valid_ascii_header_round_trips(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "header", name, value)
    assert r.body == b"accepted"
    assert _wire_values(r, name) == [value.strip(" \t")]


@PROPS
@given(name=header_name, value=field_value)
def test_valid_header_any_text_round_trips_as_utf8(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "header", name, value)
    assert r.body == b"accepted"
    # RawClient decodes header values as UTF-8 (surrogateescape for anything else).
    assert _wire_values(r, name) == [value.strip(" \t")]


@PROPS
@given(name=bad_name, value=ascii_field_value)
def test_invalid_header_name_is_value_error(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "header", name, value)
    assert r.body == b"rejected:ValueError"


@PROPS
@given(name=header_name, value=bad_value)
def test_header_value_with_control_char_is_value_error(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "header", name, value)
    assert r.body == b"rejected:ValueError"
    assert r.get_all(name) == []


# --------------------------------------------------------------------------- #
# Cookies
# --------------------------------------------------------------------------- #


@PROPS
@given(name=token, value=cookie_value)
def test_valid_cookie_round_trips(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "cookie", name, value)
    assert r.body == b"accepted"
    assert r.get_all("set-cookie") == [f"{name}={value}"]


@PROPS
@given(name=bad_name, value=cookie_value)
def test_invalid_cookie_name_is_value_error(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "cookie", name, value)
    assert r.body == b"rejected:ValueError"
    assert r.get_all("set-cookie") == []


@PROPS
@given(name=token, value=bad_cookie_value)
def test_invalid_cookie_value_is_value_error(server, raw, build, name, value) -> None:
    r = _run(server, raw, build, "cookie", name, value)
    assert r.body == b"rejected:ValueError"
    assert r.get_all("set-cookie") == []
