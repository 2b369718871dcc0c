"""Bearer-token authentication as pure ASGI middleware (RFC 6750 §3 answers)."""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from target.auth.verifier import AccessClaims
from target.errors import MalformedTokenError, TokenError
from target.jose.jws import MAX_TOKEN_BYTES
from target.metrics import Metrics
from target.store.db import DatabaseUnavailable

__all__ = ["REALM", "BearerAuthMiddleware", "challenge"]

REALM = "fleetbench"
RETRY_AFTER_S = "1"


def challenge(
    error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """A ``WWW-Authenticate: Bearer`` value, made only of our own fixed text, never client input."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


async def _send_401(send: Send, error: str | None, description: str | None) -> None:
    body = json.dumps(
        {
            "error": error or "unauthorized",
            "error_description": description or "bearer token required",
        }
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"www-authenticate", challenge(error, description).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


# How long verified requests are tallied in plain integers before they reach Prometheus.
METRICS_FLUSH_INTERVAL_S = 1.0


class _VerifyTally:
    """Successful verifications counted in plain integers and handed to Prometheus before every
    scrape (and at least once a second).

    A ``Histogram.observe`` and a ``Counter.inc`` take a lock each (and in multi-process mode write
    to a memory-mapped file): about 1.5 µs a request, a tenth of what HS256 authentication costs.
    Refusals are rare and still go to Prometheus directly. With several worker processes a scrape
    reaches one of them only, so there every success goes to Prometheus at once (``batch=False``).
    """

    def __init__(self, histogram: Any, ok: Any, *, batch: bool) -> None:
        self._histogram = histogram
        self._ok = ok
        # prometheus_client has no public call to add n observations at once; without these
        # attributes (another version), every observation goes through observe().
        self.batched = batch and all(
            hasattr(histogram, name) for name in ("_upper_bounds", "_buckets", "_sum")
        )
        self._bounds: list[float] = list(getattr(histogram, "_upper_bounds", ()))
        self._counts = [0] * len(self._bounds)
        self._sum_s = 0.0
        self._n = 0
        self._flush_at = 0.0

    def add(self, elapsed_s: float, now: float) -> None:
        if not self.batched:
            self._histogram.observe(elapsed_s)
            self._ok.inc()
            return
        # Prometheus buckets are "less than or equal": the first bound >= the value.
        self._counts[bisect.bisect_left(self._bounds, elapsed_s)] += 1
        self._sum_s += elapsed_s
        self._n += 1
        if now >= self._flush_at:
            self.flush()
            self._flush_at = now + METRICS_FLUSH_INTERVAL_S

    def flush(self) -> None:
        if not self._n:
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total_s, n, self._sum_s, self._n = self._sum_s, self._n, 0.0, 0
        for index, count in enumerate(counts):
            if count:
                self._histogram._buckets[index].inc(count)
        self._histogram._sum.inc(total_s)
        self._ok.inc(n)


async def send_503(send: Send) -> None:
    """The database cannot answer now: the client should retry (never a 500 for this)."""
    body = b'{"error":"temporarily_unavailable","error_description":"database unavailable"}'
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"retry-after", RETRY_AFTER_S.encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BearerAuthMiddleware:
    """Verifies the bearer token of requests under ``protected_prefixes``.

    On success the grant is in ``scope["auth"]`` (an :class:`AccessClaims`); endpoints then check
    scope and device (403). Every other path passes through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verify: Callable[[str], AccessClaims],
        alg: str,
        metrics: Metrics,
        protected_prefixes: tuple[str, ...] = ("/devices/", "/api/"),
    ) -> None:
        self.app = app
        self._verify = verify
        self._prefixes = protected_prefixes
        histogram = metrics.verify_seconds.labels(alg=alg)
        self._observe = histogram.observe
        self._results = metrics.verifications
        self._tally = _VerifyTally(
            histogram, metrics.verifications.labels(result="ok"), batch=not metrics.multiprocess
        )
        metrics.before_exposition(self._tally.flush)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self._prefixes):
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                raw = value
                break
        if raw is None:
            self._results.labels(result="missing").inc()
            await _send_401(send, None, None)
            return
        scheme, _, token = raw.partition(b" ")
        if scheme.lower() != b"bearer":
            # RFC 6750 §3.1: a request with no bearer credentials gets no error code.
            self._results.labels(result="missing").inc()
            await _send_401(send, None, None)
            return
        started = time.perf_counter()
        try:
            token_text = token.strip()
            if len(token_text) > MAX_TOKEN_BYTES:  # refused before any decoding
                raise MalformedTokenError("token longer than 8 KiB")
            if not token_text:
                raise MalformedTokenError("empty token")
            grant = self._verify(token_text.decode("ascii"))
        except UnicodeDecodeError:
            self._results.labels(result="malformed").inc()
            await _send_401(send, "invalid_token", "malformed: token is not ASCII")
            return
        except TokenError as e:
            self._observe(time.perf_counter() - started)
            self._results.labels(result=e.reason).inc()
            await _send_401(send, "invalid_token", e.description)
            return
        except DatabaseUnavailable:
            await send_503(send)
            return
        finished = time.perf_counter()
        self._tally.add(finished - started, finished)
        scope["auth"] = grant
        await self.app(scope, receive, send)
