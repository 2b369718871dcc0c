"""A deliberately lax device API: it reads the Bearer token's claims WITHOUT verifying them, so
it accepts a forged signature, ``alg: none``, an expired token and another device's token.

What a careless tutorial ships. Tests point ``fleetbench run``, ``probe`` and ``attack`` at it
through ``profile.toml`` beside this file (devices mint their tokens): all must fail. Its
``POST /login`` hands a token to any username, whatever the password (``login-profile.toml``:
``attack`` must fail on that too). Serve with ``uvicorn tests.apis.lax.app:app --port PORT``.
"""

from __future__ import annotations

import time

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


# A test value: this API never verifies a signature anyway.
LOGIN_KEY = "lax-api-login-key-for-tests-not-a-secret"


async def login(request: Request) -> JSONResponse:
    body = await request.json()
    name = str(body.get("username", "")) if isinstance(body, dict) else ""
    if not name:
        return JSONResponse({"error": "username required"}, status_code=400)
    # The flaw on purpose: the password is never checked.
    claims = {"sub": name, "exp": int(time.time()) + 3600}
    return JSONResponse({"access_token": jwt.encode(claims, LOGIN_KEY, algorithm="HS256")})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/devices/{device_id}/data", data),
        Route("/login", login, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
