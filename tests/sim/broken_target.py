"""A deliberately broken target: it answers 200 to any Bearer token at all.

Used to prove that a run against a target that accepts forged tokens reports
``accepted_invalid`` and fails. Serve with ``python -m uvicorn tests.sim.broken_target:app``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _b64(obj: Mapping[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def register(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"created": len(body["devices"])}, status_code=201)


async def device(request: Request) -> Response:
    return JSONResponse({"error": "not_found"}, status_code=404)


async def token(request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    now = int(time.time())
    claims = {"sub": str(form.get("client_id", "device")), "iat": now, "exp": now + 3600}
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
    access_token = f"{_b64(header)}.{_b64(claims)}.c2lnbmF0dXJl"
    return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600})


async def resource(request: Request) -> Response:
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    status = 202 if request.method == "POST" else 200
    return JSONResponse({"data": "ok"}, status_code=status)  # the bug: no verification at all


Handler = Callable[[Request], Awaitable[Response]]


def contract_app(
    resource: Handler, token: Handler = token, extra: Sequence[Route] = ()
) -> Starlette:
    """Our target's contract (registration, token endpoint, the three protected endpoints) with
    ``resource`` behind the protected endpoints: the test targets differ only in that (and some
    in ``token``, or in ``extra`` routes such as ``/metrics``)."""
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            *extra,
            Route("/admin/devices", register, methods=["POST"]),
            Route("/admin/devices/{device_id}", device),
            Route("/auth/token", token, methods=["POST"]),
            Route("/devices/{device_id}/telemetry", resource, methods=["POST"]),
            Route("/devices/{device_id}/config", resource),
            Route("/api/data", resource),
        ]
    )


app = contract_app(resource)
