"""A login-style API in the manner of DRF SimpleJWT, for profile tests: its own registration
call, a JSON login answering ``{"access": JWT, "refresh": JWT, "expires_in": s}`` (``LOGIN_TTL_S``,
default 3600), a refresh call, ``Bearer`` tokens, 401 with a JSON ``code`` for every bad token.
``LOGIN_ANSWERS=N``: only N users' logins are answered, every other user's waits
``LOGIN_HOLD_S`` (default 20) first, as behind a server's full connection limit.
``LOGIN_RETRY_AFTER_S``: each user's first login is a 429 with that ``Retry-After``.
``LOGIN_COST_S``: each login holds the server that long (a password hash on one worker: the
requests behind it wait). ``GET /api/stats``: how many login calls it has answered, so a test
counts the token requests a fleet made. Serve with ``python -m uvicorn tests.sim.login_target:app``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = secrets.token_bytes(32)
TTL_S = int(os.environ.get("LOGIN_TTL_S", "3600"))
USERS: dict[str, str] = {}
LOGIN_ANSWERS = int(os.environ.get("LOGIN_ANSWERS", "0"))  # 0: all
LOGIN_HOLD_S = float(os.environ.get("LOGIN_HOLD_S", "20"))
LOGIN_COST_S = float(os.environ.get("LOGIN_COST_S", "0"))
LOGIN_RETRY_AFTER_S = os.environ.get("LOGIN_RETRY_AFTER_S")
THROTTLED: set[str] = set()
LOGINS = [0]  # login calls answered, whatever the answer
ANSWERED: set[str] = set()


async def healthz(request: Request) -> Response:
    return Response("ok")


async def register(request: Request) -> Response:
    body: Any = await request.json()
    entries = body if isinstance(body, list) else [body]
    if any(e.get("username") in USERS for e in entries):
        return JSONResponse({"detail": "exists"}, status_code=409)
    for entry in entries:
        USERS[str(entry["username"])] = str(entry["password"])
    return JSONResponse({"created": len(entries)}, status_code=201)


async def login(request: Request) -> Response:
    LOGINS[0] += 1
    body: Any = await request.json()
    name, password = body.get("username"), body.get("password")
    if LOGIN_ANSWERS and name not in ANSWERED:
        if len(ANSWERED) >= LOGIN_ANSWERS:
            await asyncio.sleep(LOGIN_HOLD_S)  # bounded: the test's run is shorter
        ANSWERED.add(str(name))
    if LOGIN_RETRY_AFTER_S and name not in THROTTLED:
        THROTTLED.add(str(name))
        headers = {"Retry-After": LOGIN_RETRY_AFTER_S}
        return JSONResponse({"detail": "throttled"}, status_code=429, headers=headers)
    if LOGIN_COST_S:
        time.sleep(LOGIN_COST_S)  # blocks the loop on purpose, as a costly hash on one worker
    if name not in USERS or not secrets.compare_digest(USERS[name], str(password)):
        return JSONResponse({"detail": "No active account"}, status_code=401)
    return JSONResponse({**_access(name), "refresh": _token(name, "refresh", 86400)})


def _token(name: str, kind: str, ttl_s: int) -> str:
    now = time.time()  # float: two tokens in one second still differ
    claims = {"user_id": name, "iat": now, "exp": now + ttl_s, "token_type": kind}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _access(name: str) -> dict[str, Any]:
    return {"access": _token(name, "access", TTL_S), "expires_in": TTL_S}


async def refresh(request: Request) -> Response:
    body: Any = await request.json()
    try:
        claims = jwt.decode(str(body.get("refresh")), SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return JSONResponse({"detail": "invalid", "code": "token_not_valid"}, status_code=401)
    if claims.get("token_type") != "refresh":
        return JSONResponse({"detail": "wrong type", "code": "token_not_valid"}, status_code=401)
    return JSONResponse(_access(str(claims["user_id"])))


async def data(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        detail = {"detail": "Authentication credentials were not provided."}
        return JSONResponse(detail, status_code=401)
    try:
        claims = jwt.decode(header[7:], SECRET, algorithms=["HS256"])
    except jwt.ExpiredSignatureError:
        return JSONResponse({"detail": "expired", "code": "token_expired"}, status_code=401)
    except jwt.PyJWTError:
        return JSONResponse({"detail": "invalid", "code": "token_not_valid"}, status_code=401)
    if claims.get("token_type") != "access":
        return JSONResponse({"detail": "wrong type", "code": "token_not_valid"}, status_code=401)
    if claims.get("user_id") != request.path_params["device"]:
        return JSONResponse({"detail": "not yours"}, status_code=403)
    return JSONResponse({"ok": True})


async def stats(request: Request) -> Response:
    return JSONResponse({"logins": LOGINS[0]})


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/api/stats", stats),
        Route("/api/register", register, methods=["POST"]),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/refresh", refresh, methods=["POST"]),
        Route("/api/devices/{device}/data", data),
    ]
)
