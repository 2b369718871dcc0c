"""A device API that stalls once, on purpose: from ``STALL_AFTER_S`` seconds after its first
data request, for ``STALL_S`` seconds (defaults 3 and 2), every request it receives waits until
the stall ends, as a service does in a long garbage-collection pause or behind a lock. Outside
the stall it answers at once.

It reads no token (verification is not what it tests) and counts every data request it
receives, for a test to compare with what fleetbench says it sent: ``GET /stats`` ->
``{"requests": n}``. Tests point ``fleetbench run --rate`` at it through ``profile.toml`` beside
this file. Serve with ``python -m uvicorn tests.apis.stall.app:app``.
"""

from __future__ import annotations

import asyncio
import os
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

STALL_AFTER_S = float(os.environ.get("STALL_AFTER_S", "3"))
STALL_S = float(os.environ.get("STALL_S", "2"))
STATE = {"requests": 0, "first": 0.0}


async def data(request: Request) -> JSONResponse:
    now = time.monotonic()
    if not STATE["requests"]:
        STATE["first"] = now
    STATE["requests"] += 1
    stall_from = STATE["first"] + STALL_AFTER_S
    stall_until = stall_from + STALL_S
    if stall_from <= now < stall_until:
        await asyncio.sleep(stall_until - now)  # stalled, not busy: the loop is idle meanwhile
    return JSONResponse({"device": request.path_params["device_id"]})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse({"requests": STATE["requests"]})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/devices/{device_id}/data", data),
        Route("/stats", stats),
        Route("/healthz", healthz),
    ]
)
