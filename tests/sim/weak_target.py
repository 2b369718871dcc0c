"""A deliberately weak target with our routes and admin API shape, one weakness per mode.

``WEAK_TARGET_MODE`` picks it:

- ``secret``: correct verification with PyJWT, but HS256 signed with the secret ``secret``;
- ``alg_none``: HS256 with a strong secret, but a token whose ``alg`` is none (any spelling) is
  taken unverified, as naive libraries once did;
- ``jku``: a token naming a ``jku`` has its key fetched from there (only loopback URLs, with a
  short timeout: this is a test fixture).

Unlike ``broken_target`` (which accepts everything), each mode is a realistic single flaw, so a
test shows ``fleetbench attack`` pinpoints it. Serve with
``WEAK_TARGET_MODE=alg_none python -m uvicorn tests.sim.weak_target:app``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MODE = os.environ.get("WEAK_TARGET_MODE", "secret")
ADMIN_KEY = os.environ.get("WEAK_TARGET_ADMIN_KEY", "admin-key")
ISSUER, AUDIENCE, KID = "urn:weak:target", "urn:weak:api", "k1"
SECRET = b"secret" if MODE == "secret" else secrets.token_bytes(64)
DEFAULT_SCOPE = "telemetry:write config:read"
DEVICES: dict[str, dict[str, Any]] = {}


def _admin(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {ADMIN_KEY}"


def _unauthorized() -> Response:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def register(request: Request) -> Response:
    if not _admin(request):
        return _unauthorized()
    body = await request.json()
    for entry in body["devices"]:
        if entry["id"] in DEVICES:
            return JSONResponse({"error": "conflict"}, status_code=409)
    for entry in body["devices"]:
        DEVICES[entry["id"]] = {**entry, "active": True}
    return JSONResponse({"created": len(body["devices"])}, status_code=201)


async def device(request: Request) -> Response:
    if not _admin(request):
        return _unauthorized()
    device_id = request.path_params["device_id"]
    if request.method == "DELETE":
        DEVICES.pop(device_id, None)
        return Response(status_code=204)
    record = DEVICES.get(device_id)
    if record is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse({"id": device_id, "active": record["active"]})


async def revoke(request: Request) -> Response:
    if not _admin(request):
        return _unauthorized()
    record = DEVICES.get(request.path_params["device_id"])
    if record is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    record["active"] = False
    return JSONResponse({"id": request.path_params["device_id"], "active": False})


async def jwks(request: Request) -> Response:
    return JSONResponse({"keys": []})


async def token(request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    record = DEVICES.get(str(form.get("client_id")))
    if record is None or not record["active"] or record["secret"] != form.get("client_secret"):
        return JSONResponse({"error": "invalid_client"}, status_code=401)
    scope = str(form.get("scope") or DEFAULT_SCOPE)
    if not set(scope.split()) <= set(DEFAULT_SCOPE.split()):
        return JSONResponse({"error": "invalid_scope"}, status_code=400)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": record["id"], "iat": now, "exp": now + 600}
    claims["scope"] = scope
    access = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": KID, "typ": "at+jwt"})
    return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 600})


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def _verify(token: str) -> dict[str, Any]:
    header = _header(token)
    if MODE == "alg_none" and str(header.get("alg", "")).lower() == "none":
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        return claims
    if MODE == "jku" and "jku" in header:
        url = str(header["jku"])
        if urlsplit(url).hostname != "127.0.0.1":
            raise jwt.InvalidTokenError("jku not on loopback")
        keys = requests.get(url, timeout=2).json()["keys"]
        key = jwt.PyJWK(next(k for k in keys if k.get("kid") == header.get("kid")))
        claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=AUDIENCE,
                            issuer=ISSUER, options={"require": ["exp", "iat", "sub"]})  # fmt: skip
        return claims
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                        options={"require": ["exp", "iat", "sub"]})  # fmt: skip
    return claims


async def resource(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return JSONResponse({"error": "unauthorized"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="weak"'})  # fmt: skip
    try:
        claims = _verify(token.strip())
    except (jwt.InvalidTokenError, ValueError, KeyError, StopIteration, requests.RequestException):
        challenge = 'Bearer realm="weak", error="invalid_token", error_description="signature: no"'
        return JSONResponse({"error": "invalid_token"}, status_code=401,
                            headers={"WWW-Authenticate": challenge})  # fmt: skip
    device_id = request.path_params.get("device_id", claims.get("sub"))
    record = DEVICES.get(str(claims.get("sub")))
    needed = "telemetry:write" if request.method == "POST" else "config:read"
    granted = str(claims.get("scope", "")).split()
    if device_id != claims.get("sub") or record is None or not record["active"]:
        needed = "nothing"  # another device's path, or a device gone: forbidden all the same
    if needed not in granted:
        forbidden = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
        return JSONResponse({"error": "insufficient_scope"}, status_code=403, headers=forbidden)
    return JSONResponse({"data": "ok"}, status_code=202 if request.method == "POST" else 200)


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/admin/devices", register, methods=["POST"]),
        Route("/admin/devices/{device_id}", device, methods=["GET", "DELETE"]),
        Route("/admin/devices/{device_id}/revoke", revoke, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks),
        Route("/auth/token", token, methods=["POST"]),
        Route("/devices/{device_id}/telemetry", resource, methods=["POST"]),
        Route("/devices/{device_id}/config", resource),
        Route("/api/data", resource),
    ]
)
