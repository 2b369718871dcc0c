"""The broken target (any Bearer token is accepted) that also notes when each token request
arrived: ``GET /arrivals`` lists them (Unix s). Serve with
``python -m uvicorn tests.sim.stamping_target:app``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sim.broken_target import app, token

ARRIVALS: list[float] = []


async def stamped_token(request: Request) -> Response:
    ARRIVALS.append(time.time())
    return await token(request)


async def arrivals(request: Request) -> Response:
    return JSONResponse({"arrivals": ARRIVALS})


# Ahead of the broken target's own routes: the first match wins.
app.router.routes[:0] = [
    Route("/auth/token", stamped_token, methods=["POST"]),
    Route("/arrivals", arrivals),
]
