"""Reading request bodies with a size cap, and parsing them into what the endpoints expect."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from target.errors import OAuthError, RequestError
from target.jsontext import has_lone_surrogate

__all__ = ["read_body", "read_form", "read_json"]


async def read_body(request: Request, limit: int, *, oauth: bool = False) -> bytes:
    """The whole body, or a 413 once it is larger than ``limit`` bytes."""
    too_large = (
        OAuthError("invalid_request", f"body larger than {limit} bytes", 413)
        if oauth
        else RequestError(413, "payload_too_large", f"body larger than {limit} bytes")
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(request: Request, limit: int) -> Any:
    if _media_type(request) != "application/json":
        raise RequestError(415, "unsupported_media_type", "content type must be application/json")
    body = await read_body(request, limit)
    try:
        text = body.decode("utf-8")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RequestError(400, "invalid_json", "body is not valid JSON") from e
    if has_lone_surrogate(text, value):
        raise RequestError(400, "invalid_json", "body holds a lone surrogate escape")
    return value


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """An RFC 6749 form body: urlencoded, UTF-8, each parameter at most once (§3.2)."""
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise OAuthError(
            "invalid_request", "content type must be application/x-www-form-urlencoded"
        )
    body = await read_body(request, limit, oauth=True)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as e:
        raise OAuthError("invalid_request", "body is not a valid form") from e
    form = dict(pairs)
    if len(form) != len(pairs):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return form
