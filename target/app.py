"""The Starlette application: routes, middleware, background upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from target import admin, devices, oauth
from target.metrics import CONTENT_TYPE_LATEST
from target.middleware import BearerAuthMiddleware
from target.openapi import openapi_schema
from target.responses import EXCEPTION_HANDLERS
from target.settings import Settings, settings_from_env
from target.state import TargetState
from target.telemetry import FLUSH_INTERVAL_S

__all__ = ["REFRESH_INTERVAL_S", "create_app", "create_app_from_env"]

# How often a worker looks for other workers' revocations and key rotations: the bound on how
# long a revoked device's tokens can still be honoured by another worker process.
REFRESH_INTERVAL_S = 1.0
JTI_CLEANUP_INTERVAL_S = 60.0


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
            "grant_types_supported": ["client_credentials", oauth.JWT_BEARER],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
            "scopes_supported": ["telemetry:write", "config:read"],
            "access_token_signing_alg": state.settings.alg,
            "audience": state.settings.audience,
        }
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_schema())


async def _upkeep(state: TargetState) -> None:
    last_refresh = last_cleanup = time.monotonic()
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        state.telemetry.flush()
        now = time.monotonic()
        if now - last_refresh >= REFRESH_INTERVAL_S:
            last_refresh = now
            state.refresh(time.time())
        if now - last_cleanup >= JTI_CLEANUP_INTERVAL_S:
            last_cleanup = now
            state.assertions.forget_expired()


def create_app(settings: Settings) -> Starlette:
    state = TargetState.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_upkeep(state))
        try:
            yield
        finally:
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
