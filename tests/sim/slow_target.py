"""A deliberately slow target: every resource request waits ``FLEETBENCH_SLOW_S`` seconds
(default 0.5) before it is answered, without using any CPU while it waits.

It accepts any Bearer token (like ``broken_target``: verification is not what it tests) and
serves prometheus_client's default ``/metrics``, which exports ``process_cpu_seconds_total``, so a
run against it measures the target's own CPU as it would an external target's. Used to prove
that a fleet which cannot get its answers in time reports the shortfall, the requests unanswered
at stop, and the target as the limit. Serve with ``python -m uvicorn tests.sim.slow_target:app``.
"""

from __future__ import annotations

import asyncio
import os

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sim.broken_target import contract_app

SLOW_S = float(os.environ.get("FLEETBENCH_SLOW_S", "0.5"))


async def resource(request: Request) -> Response:
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    await asyncio.sleep(SLOW_S)  # slow, not busy: the event loop is idle meanwhile
    status = 202 if request.method == "POST" else 200
    return JSONResponse({"data": "ok"}, status_code=status)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


app = contract_app(resource, extra=[Route("/metrics", metrics)])
