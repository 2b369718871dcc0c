"""Targets for the trust scenarios: our contract's token endpoint, key rotation and revocation
in a small HS256 API, sound (``app``) or deliberately broken, to prove the rotation storm and
the revocation scenario can fail:

- ``drops_old_keys``: a rotation drops the old key at once (no grace period), so every token the
  devices hold is refused until they renew: ``refused_valid`` by the old key.
- ``forgets_revocations``: a revoke is answered 200 and forgotten: the revoked devices' tokens
  stay accepted, each acceptance after the bound an ``accepted_invalid``.
- ``late_new_keys``: the token endpoint signs with the new key at once, but the API accepts it
  only 2 s later, as a resource server behind a JWKS cache does.

Each also counts the connections each device's requests came on (``GET /debug/connections``).
Serve with ``python -m uvicorn tests.sim.trust_target:forgets_revocations``; ``TRUST_TTL_S``
sets the tokens' lifetime (default 4 s).
"""

from __future__ import annotations

import os
import secrets
import time
from collections import defaultdict
from urllib.parse import parse_qs

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sim.broken_target import contract_app

TTL_S = int(os.environ.get("TRUST_TTL_S", "4"))


def trust_app(
    *, keep_old_keys: bool, remember_revocations: bool, new_key_delay_s: float = 0.0
) -> Starlette:
    keys: dict[str, bytes] = {}
    accepted_from: dict[str, float] = {}  # kid -> when the API starts accepting it
    current = [""]
    revoked: set[str] = set()
    connections: defaultdict[str, set[tuple[str, int]]] = defaultdict(set)

    def new_key() -> dict[str, str]:
        kid = secrets.token_urlsafe(8)
        if not keep_old_keys:
            keys.clear()  # the flaw of drops_old_keys: no grace period at all
        keys[kid] = secrets.token_bytes(32)
        accepted_from[kid] = time.time() + new_key_delay_s if current[0] else 0.0
        previous, current[0] = current[0], kid
        return {"kid": kid, "previous_kid": previous}

    new_key()

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        device = str(form.get("client_id", ""))
        if device in revoked:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        now = int(time.time())
        claims = {"sub": device, "iat": now, "exp": now + TTL_S}
        kid = current[0]
        access = jwt.encode(claims, keys[kid], algorithm="HS256", headers={"kid": kid})
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": TTL_S})

    def refuse(description: str) -> Response:
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        return JSONResponse(
            {"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": challenge}
        )

    async def resource(request: Request) -> Response:
        device = request.path_params.get("device_id", "")
        if request.client is not None:
            connections[device].add((request.client.host, request.client.port))
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            kid = jwt.get_unverified_header(bearer).get("kid")
            key = keys.get(str(kid))
            if key is None or time.time() < accepted_from[str(kid)]:
                return refuse("signature: unknown key")
            claims = jwt.decode(bearer, key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            return refuse("expired: token expired")
        except jwt.PyJWTError:
            return refuse("signature: bad token")
        if claims.get("sub") in revoked:
            return refuse("revoked: device revoked")
        return JSONResponse({"ok": True}, status_code=202 if request.method == "POST" else 200)

    async def rotate(request: Request) -> Response:
        return JSONResponse(new_key())

    async def revoke(request: Request) -> Response:
        device = request.path_params["device_id"]
        if remember_revocations:
            revoked.add(device)
        return JSONResponse({"id": device, "active": False})  # forgets_revocations: a lie

    async def debug_connections(request: Request) -> Response:
        return JSONResponse({device: len(seen) for device, seen in connections.items()})

    return contract_app(
        resource,
        token,
        extra=[
            Route("/admin/keys/rotate", rotate, methods=["POST"]),
            Route("/admin/devices/{device_id}/revoke", revoke, methods=["POST"]),
            Route("/debug/connections", debug_connections),
        ],
    )


app = trust_app(keep_old_keys=True, remember_revocations=True)
drops_old_keys = trust_app(keep_old_keys=False, remember_revocations=True)
forgets_revocations = trust_app(keep_old_keys=True, remember_revocations=False)
late_new_keys = trust_app(keep_old_keys=True, remember_revocations=True, new_key_delay_s=2.0)
