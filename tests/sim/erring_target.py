"""A target that fails one request in ``FLEETBENCH_ERROR_EVERY`` (default 10) with a 503, at once
and otherwise fast: a service out of its error budget however light the load.

It accepts any Bearer token (like ``broken_target``: verification is not what it tests). Used to
prove that ``fleetbench capacity`` judges a step by its error budget as well as its latency. Serve
with ``python -m uvicorn tests.sim.erring_target:app``.
"""

from __future__ import annotations

import itertools
import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.sim.broken_target import contract_app

ERROR_EVERY = int(os.environ.get("FLEETBENCH_ERROR_EVERY", "10"))
_COUNT = itertools.count(1)


async def resource(request: Request) -> Response:
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    if next(_COUNT) % ERROR_EVERY == 0:
        return JSONResponse({"error": "overloaded"}, status_code=503)
    status = 202 if request.method == "POST" else 200
    return JSONResponse({"data": "ok"}, status_code=status)


app = contract_app(resource)
