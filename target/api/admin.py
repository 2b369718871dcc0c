"""Admin endpoints: device registration and revocation, key rotation, telemetry accounting."""

from __future__ import annotations

import hmac
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from target.api.bodies import read_json
from target.errors import RequestError
from target.settings import MIN_ADMIN_KEY_CHARS
from target.state import TargetState
from target.store.registry import parse_devices

__all__ = ["routes"]

# 10,000 devices with public JWKs fit in about 3 MiB.
MAX_REGISTRATION_BYTES = 8 * 1024 * 1024


def _state(request: Request) -> TargetState:
    state: TargetState = request.app.state.target
    admin_key = state.settings.admin_key
    given = request.headers.get("authorization", "")
    scheme, _, key = given.partition(" ")
    if (
        admin_key is None
        or len(str(admin_key)) < MIN_ADMIN_KEY_CHARS  # never let an empty key match an empty one
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(key.encode(), str(admin_key).encode())
    ):
        raise RequestError(401, "unauthorized", "admin bearer key required")
    return state


async def _device_or_404(state: TargetState, device_id: str) -> dict[str, object]:
    record = await state.db.run(state.registry.get, device_id)
    if record is None:
        raise RequestError(404, "not_found", "no such device")
    return record


async def register_devices(request: Request) -> Response:
    state = _state(request)
    devices = parse_devices(await read_json(request, MAX_REGISTRATION_BYTES))
    created = await state.db.run(state.registry.register, devices)
    return JSONResponse({"created": created}, status_code=201)


async def get_device(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(await _device_or_404(state, request.path_params["device_id"]))


async def device(request: Request) -> Response:
    if request.method == "DELETE":
        return await delete_device(request)
    return await get_device(request)


async def revoke_device(request: Request) -> Response:
    state = _state(request)
    device_id = request.path_params["device_id"]
    await _device_or_404(state, device_id)
    return JSONResponse(await state.db.run(state.registry.revoke, device_id))


async def delete_device(request: Request) -> Response:
    state = _state(request)
    if not await state.db.run(state.registry.delete, request.path_params["device_id"]):
        raise RequestError(404, "not_found", "no such device")
    return Response(status_code=204)


async def rotate_keys(request: Request) -> Response:
    state = _state(request)
    new, old = await state.db.run(state.keys.rotate)
    state.verifier.set_keys(state.keys.verification_keys(time.time()))
    return JSONResponse(
        {"kid": new.kid, "alg": new.alg, "previous_kid": old.kid, "grace_s": state.keys.grace_s}
    )


async def stats(request: Request) -> Response:
    state = _state(request)
    return JSONResponse(await state.telemetry.stats())


routes = [
    Route("/admin/devices", register_devices, methods=["POST"]),
    # One route per path, so a 405 lists every method the path has in ``Allow``.
    Route("/admin/devices/{device_id}", device, methods=["GET", "DELETE"]),
    Route("/admin/devices/{device_id}/revoke", revoke_device, methods=["POST"]),
    Route("/admin/keys/rotate", rotate_keys, methods=["POST"]),
    Route("/admin/stats", stats, methods=["GET"]),
]
