"""Resource endpoints a device calls with its access token."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from target.api.bodies import read_json
from target.auth.verifier import AccessClaims
from target.errors import RequestError
from target.reading import MAX_READING_BYTES, InvalidReading, Reading, check_reading
from target.state import TargetState

__all__ = ["routes"]


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


def _reading(body: Any) -> Reading:
    try:
        return check_reading(body)
    except InvalidReading as e:
        raise RequestError(422, "invalid_reading", e.description) from e


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
