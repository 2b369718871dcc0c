"""Resource endpoints a device calls with its access token."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from target.api.bodies import read_json
from target.auth.verifier import AccessClaims
from target.errors import RequestError
from target.state import TargetState

__all__ = ["routes"]

MAX_READING_BYTES = 16 * 1024
MAX_VALUES = 64
MAX_SEQ = 2**63 - 1


def _grant(
    request: Request, scope: str | None = None, device_id: str | None = None
) -> AccessClaims:
    """The request's verified grant, or a 403 if it lacks ``scope`` or is for another device."""
    grant: AccessClaims = request.scope["auth"]
    if scope is not None and scope not in grant.scopes:
        raise RequestError(403, "insufficient_scope", "token lacks the required scope", scope=scope)
    if device_id is not None and grant.sub != device_id:
        raise RequestError(
            403, "insufficient_scope", "token belongs to another device", scope=scope or ""
        )
    return grant


def _reading(body: Any) -> tuple[int, float, dict[str, Any]]:
    if not isinstance(body, dict):
        raise RequestError(422, "invalid_reading", "body must be a JSON object")
    seq, ts, values = body.get("seq"), body.get("ts"), body.get("values", {})
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise RequestError(422, "invalid_reading", "seq must be an integer from 0 to 2^63-1")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise RequestError(422, "invalid_reading", "ts must be a finite number")
    if not isinstance(values, dict) or len(values) > MAX_VALUES:
        raise RequestError(
            422, "invalid_reading", f"values must be an object of at most {MAX_VALUES}"
        )
    for name, value in values.items():
        if len(name) > 64 or not isinstance(value, int | float | str | bool | None):
            raise RequestError(422, "invalid_reading", "values must map short names to scalars")
        if isinstance(value, str) and len(value) > 256:
            raise RequestError(422, "invalid_reading", "a value string is longer than 256")
    return seq, float(ts), values


async def telemetry(request: Request) -> Response:
    device_id = request.path_params["device_id"]
    _grant(request, "telemetry:write", device_id)
    seq, ts, values = _reading(await read_json(request, MAX_READING_BYTES))
    state: TargetState = request.app.state.target
    await state.telemetry.add(device_id, seq, ts, values)
    state.metrics.telemetry_accepted.inc()
    return JSONResponse({"seq": seq}, status_code=202)


async def config(request: Request) -> Response:
    device_id = request.path_params["device_id"]
    _grant(request, "config:read", device_id)
    return JSONResponse(
        {"device_id": device_id, "report_interval_s": 10, "firmware": "1.4.2", "units": "metric"}
    )


async def api_data(request: Request) -> Response:
    grant = _grant(request)
    return JSONResponse({"device_id": grant.sub, "data": "ok"})


routes = [
    Route("/devices/{device_id}/telemetry", telemetry, methods=["POST"]),
    Route("/devices/{device_id}/config", config, methods=["GET"]),
    Route("/api/data", api_data, methods=["GET"]),
]
