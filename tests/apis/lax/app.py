"""A deliberately lax device API: it reads the Bearer token's claims WITHOUT verifying them, so
it accepts a forged signature, ``alg: none``, an expired token and another device's token.

What a careless tutorial ships. Tests point ``fleetbench run`` and ``fleetbench probe`` at it
through ``profile.toml`` beside this file: both must fail. Serve with
``uvicorn tests.apis.lax.app:app --port PORT``.
"""

from __future__ import annotations

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def data(request: Request) -> JSONResponse:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return JSONResponse({"error": "missing token"}, status_code=401)
    try:
        # The flaw on purpose: no signature, alg or exp check.
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return JSONResponse({"error": "invalid token"}, status_code=401)
    return JSONResponse({"device": request.path_params["device_id"], "as": claims.get("sub")})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/devices/{device_id}/data", data),
        Route("/healthz", healthz),
    ]
)
