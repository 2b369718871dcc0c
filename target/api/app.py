"""The Starlette application: routes, middleware, background upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from target.api import admin, devices, oauth
from target.api.middleware import BearerAuthMiddleware
from target.api.openapi import openapi_schema
from target.api.responses import EXCEPTION_HANDLERS
from target.jose.algorithms import ASSERTION_ALGORITHMS
from target.jose.vocabulary import CLIENT_CREDENTIALS, JWT_BEARER
from target.metrics import CONTENT_TYPE_LATEST
from target.mqtt.broker import MqttListener
from target.settings import Settings, settings_from_env
from target.state import TargetState

__all__ = ["REFRESH_INTERVAL_S", "create_app", "create_app_from_env"]

# Other workers' revocations and rotations are picked up on the hot path (``ChangeWatch``); the
# tick retires keys whose grace has ended and catches changes on a worker that gets no requests.
REFRESH_INTERVAL_S = 1.0
JTI_CLEANUP_INTERVAL_S = 60.0
SHUTDOWN_DRAIN_S = 5.0

log = logging.getLogger("target.app")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    state: TargetState = request.app.state.target
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def jwks(request: Request) -> Response:
    state: TargetState = request.app.state.target
    return JSONResponse(state.keys.jwks(), headers={"Cache-Control": "max-age=60"})


def _public_base(settings: Settings, request: Request) -> str:
    """The base of the metadata's URLs: configured, never taken from the request's ``Host``
    header (which the client chooses, and a cache in front would then serve to everyone)."""
    if settings.public_url is not None:
        return settings.public_url
    if settings.issuer.startswith(("https://", "http://")):
        return settings.issuer.rstrip("/")  # RFC 8414 §2: the issuer is the server's URL
    host, port = request.scope.get("server") or (settings.host, settings.port)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


async def server_metadata(request: Request) -> Response:
    """RFC 8414 metadata, so a client can discover the issuer its assertions must name."""
    state: TargetState = request.app.state.target
    base = _public_base(state.settings, request)
    return JSONResponse(
        {
            "issuer": state.settings.issuer,
            "token_endpoint": f"{base}/auth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "grant_types_supported": [CLIENT_CREDENTIALS, JWT_BEARER],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "scopes_supported": ["telemetry:write", "config:read"],
            "access_token_signing_alg": state.settings.alg,
            "audience": state.settings.audience,
        }
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_schema())


async def _upkeep(state: TargetState) -> None:
    """Each step survives its own failure: it is logged and tried again on its next turn.

    (One ``database is locked`` used to end this task, and with it key retirement, the pick-up of
    other workers' revocations and ``jti`` cleanup, silently.)
    """
    last_cleanup = time.monotonic()
    while True:
        await asyncio.sleep(REFRESH_INTERVAL_S)
        try:
            state.refresh(time.time())
        except Exception as e:
            log.warning("upkeep: refresh failed (%s); retrying in %.0f s", e, REFRESH_INTERVAL_S)
        if time.monotonic() - last_cleanup >= JTI_CLEANUP_INTERVAL_S:
            try:
                await state.db.run(state.assertions.forget_expired)
                last_cleanup = time.monotonic()
            except Exception as e:
                log.warning("upkeep: jti cleanup failed (%s); retrying", e)


def create_app(settings: Settings) -> Starlette:
    state = TargetState.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_upkeep(state)), asyncio.create_task(state.telemetry.run())]
        # MQTT in this same loop and state: started before the first HTTP request is answered,
        # so a /healthz 200 means the MQTT port listens too.
        mqtt = MqttListener(state) if settings.mqtt_port is not None else None
        if mqtt is not None:
            port = await mqtt.start()
            app.state.mqtt_port = port
            print(f"target: MQTT 3.1.1 on {settings.mqtt_host}:{port}", file=sys.stderr)
        try:
            yield
        finally:
            if mqtt is not None:  # first: no reading arrives while the rest is drained
                with contextlib.suppress(Exception):  # TimeoutError too: the exit closes the rest
                    await asyncio.wait_for(mqtt.stop(), SHUTDOWN_DRAIN_S)
            with contextlib.suppress(Exception):
                await state.telemetry.drain(SHUTDOWN_DRAIN_S)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.close()

    # Starlette tries routes in order: the per-request device routes go first, so the hot path
    # does not pay for a dozen regex misses (about a third of /api/data's cost when it came last).
    routes: list[Any] = [
        *devices.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", server_metadata, methods=["GET"]),
        *oauth.routes,
        *admin.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                BearerAuthMiddleware,
                verify=state.verifier.verify,
                alg=settings.alg,
                metrics=state.metrics,
            )
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.target = state
    return app


def create_app_from_env() -> Starlette:
    """The factory uvicorn calls in each worker process when ``--workers`` > 1."""
    return create_app(settings_from_env())
