"""Decoding request bodies by content type, for ``HttpRequest.get_body_parsed()``.

The Rust core calls :func:`parse_body`; the standard library does the decoding (``json``,
``urllib.parse`` and ``email`` for multipart), so each format follows its own RFC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from godottpd._godottpd import BadRequest


@dataclass(frozen=True)
class FormPart:
    """One part of a ``multipart/form-data`` body (RFC 7578)."""

    name: str
    """The form field's name (``Content-Disposition: form-data; name=...``)."""
    data: bytes
    """The part's content, exactly as sent."""
    filename: str | None = None
    """The file name, for a file upload."""
    content_type: str | None = None
    """The part's own ``Content-Type``, if it has one."""
    headers: dict[str, str] = field(default_factory=dict)
    """Every header of the part."""

    @property
    def text(self) -> str:
        """The content decoded as UTF-8."""
        return self.data.decode("utf-8")


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = content_type
    pairs = message.get_params() or []
    params = {key.lower(): value for key, value in pairs[1:]}
    return message.get_content_type(), params


def parse_body(content_type: str, body: bytes) -> Any:
    """Decodes ``body`` according to ``content_type``; ``None`` for types it does not know.

    Raises ``BadRequest`` (a ``ValueError``) when the body does not decode.
    """
    try:
        return _parse_body(content_type, body)
    except BadRequest:
        raise
    except ValueError as error:
        raise BadRequest(f"malformed request body: {error}") from error


def decode_text(content_type: str | None, body: bytes) -> str:
    """The body decoded by the ``charset`` of its content type (UTF-8 when none is given).

    Raises ``BadRequest`` when the body is not text in that charset.
    """
    charset = "utf-8"
    if content_type:
        charset = _media_type(content_type)[1].get("charset", "utf-8")
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, LookupError) as error:
        raise BadRequest(f"request body is not valid {charset} text: {error}") from error


def _parse_body(content_type: str, body: bytes) -> Any:
    media_type, params = _media_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        charset = params.get("charset", "utf-8")
        try:
            return json.loads(body.decode(charset))
        except (UnicodeDecodeError, LookupError) as error:
            raise BadRequest(f"request body is not valid {charset} text: {error}") from error
        except json.JSONDecodeError as error:
            raise BadRequest(f"request body is not valid JSON: {error}") from error
    if media_type == "application/x-www-form-urlencoded":
        charset = params.get("charset", "utf-8")
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError as error:
            raise BadRequest("form body must be ASCII (percent-encoded)") from error
        return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict"))
    if media_type == "multipart/form-data":
        if "boundary" not in params:
            raise BadRequest("multipart/form-data body without a boundary parameter")
        return _parse_multipart(content_type, body)
    return None


def _parse_multipart(content_type: str, body: bytes) -> list[FormPart]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequest("malformed multipart/form-data body")
    parts: list[FormPart] = []
    for part in message.iter_parts():
        disposition = part.get("content-disposition", "")
        name = part.get_param("name", header="content-disposition")
        if not disposition or name is None:
            raise BadRequest("multipart part without a Content-Disposition name")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        explicit_type = part.get("content-type")
        parts.append(
            FormPart(
                name=str(name),
                data=data,
                filename=filename,
                content_type=part.get_content_type() if explicit_type else None,
                headers={key.lower(): str(value) for key, value in part.items()},
            )
        )
    return parts
