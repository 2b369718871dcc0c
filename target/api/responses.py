"""JSON responses and the exception handlers that turn our errors into correct 4xx answers."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from target.api.middleware import RETRY_AFTER_S, challenge
from target.errors import (
    DatabaseUnavailable,
    DuplicateDeviceError,
    InvalidDeviceError,
    InvalidRegistrationError,
    KeyPinnedError,
    OAuthError,
    RequestError,
    StorageError,
)

__all__ = ["EXCEPTION_HANDLERS", "NO_STORE"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

log = logging.getLogger("target.responses")


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    body: dict[str, Any] = {"error": exc.error, "error_description": exc.description, **exc.extra}
    headers = {}
    if exc.status_code == 401:  # RFC 7235 §3.1: a 401 names the scheme that would work
        headers["WWW-Authenticate"] = challenge()
    elif exc.status_code == 403:
        headers["WWW-Authenticate"] = challenge(
            "insufficient_scope", exc.description, str(exc.extra.get("scope", "")) or None
        )
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


# Storage speaks in domain errors; this table is where each becomes an answer (status, error code).
STORAGE_ANSWERS: dict[type[StorageError], tuple[int, str]] = {
    InvalidRegistrationError: (400, "invalid_request"),
    InvalidDeviceError: (422, "invalid_device"),
    DuplicateDeviceError: (409, "conflict"),
    KeyPinnedError: (409, "conflict"),
}


async def _storage_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StorageError)
    status_code, error = STORAGE_ANSWERS[type(exc)]
    body = {"error": error, "error_description": exc.description, **exc.details()}
    return JSONResponse(body, status_code=status_code)


async def _oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    headers = dict(NO_STORE)
    if exc.status_code == 401 and request.headers.get("authorization", "")[:6].lower() == "basic ":
        headers["WWW-Authenticate"] = 'Basic realm="fleetbench"'  # RFC 6749 §5.2
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status_code,
        headers=headers,
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": error, "error_description": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A locked or failing database is the server's trouble, not the client's: 503, retry."""
    reason = str(exc) if isinstance(exc, DatabaseUnavailable) else "database error"
    log.warning("%s %s: 503 (%s)", request.method, request.url.path, reason)
    return JSONResponse(
        {"error": "temporarily_unavailable", "error_description": "database unavailable"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_S, **NO_STORE},
    )


EXCEPTION_HANDLERS = {
    DatabaseUnavailable: _database_unavailable,
    sqlite3.Error: _database_unavailable,
    RequestError: _request_error,
    StorageError: _storage_error,
    OAuthError: _oauth_error,
    HTTPException: _http_exception,
}
