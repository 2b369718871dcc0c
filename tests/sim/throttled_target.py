"""A target whose token endpoint throttles renewals: the first token of each device is granted,
later ones at most ``RENEWALS_PER_WINDOW`` per ``WINDOW_S`` across the fleet, the rest answered
429 ``slow_down``. Its tokens live ``FLEETBENCH_THROTTLED_TTL_S`` seconds (default 3) and are
refused for expiry after that, RFC 6750 style, as our target refuses them.

It signs nothing (verification is not what it tests): it is the storm's token endpoint giving
out, so a run shows what ``--backoff`` does with refused token calls. Serve with
``python -m uvicorn tests.sim.throttled_target:app``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.sim.broken_target import _b64, contract_app

TTL_S = int(os.environ.get("FLEETBENCH_THROTTLED_TTL_S", "3"))
WINDOW_S = 0.5
RENEWALS_PER_WINDOW = 2
_issued: set[str] = set()
_window: list[float] = [0.0, 0.0]  # window start, renewals granted in it


async def token(request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    client = str(form.get("client_id", "device"))
    now = time.time()
    if client in _issued:
        if now - _window[0] >= WINDOW_S:
            _window[:] = [now, 0.0]
        if _window[1] >= RENEWALS_PER_WINDOW:
            return JSONResponse(
                {"error": "slow_down", "error_description": "too many token requests"},
                status_code=429,
                headers={"Retry-After": "1"},
            )
        _window[1] += 1
    _issued.add(client)
    claims = {"sub": client, "iat": int(now), "exp": int(now) + TTL_S}
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
    access_token = f"{_b64(header)}.{_b64(claims)}.c2lnbmF0dXJl"
    return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": TTL_S})


def _exp(authorization: str) -> float:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


async def resource(request: Request) -> Response:
    authorization = request.headers.get("authorization", "")
    if not authorization.startswith("Bearer "):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    if time.time() >= _exp(authorization):
        challenge = 'Bearer realm="test", error="invalid_token", error_description="expired: exp"'
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})
    status = 202 if request.method == "POST" else 200
    return JSONResponse({"data": "ok"}, status_code=status)


app = contract_app(resource, token)
