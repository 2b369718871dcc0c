"""The OAuth 2.0 token endpoint: client credentials (RFC 6749 §4.4) and jwt-bearer (RFC 7523)."""

from __future__ import annotations

import base64
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from target.api.bodies import read_form
from target.api.responses import NO_STORE
from target.errors import OAuthError
from target.jose.vocabulary import CLIENT_CREDENTIALS, JWT_BEARER
from target.state import TargetState

__all__ = ["routes"]

MAX_FORM_BYTES = 16 * 1024


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization")
    in_form = "client_id" in form or "client_secret" in form
    if header is not None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "client authentication must be HTTP Basic", 401)
        if in_form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError as e:  # binascii.Error, UnicodeDecodeError, or non-ASCII input
            raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401) from e
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401)
        return unquote(client_id), unquote(secret)  # RFC 6749 §2.3.1 form-encodes both
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError("invalid_client", "client_id and client_secret required", 401)
    return client_id, secret


def _narrow_scope(granted: str, requested: str | None) -> str:
    if requested is None:
        return granted
    wanted = requested.split()
    if not wanted or not set(wanted) <= set(granted.split()):
        raise OAuthError("invalid_scope", "requested scope exceeds the device's scope")
    return " ".join(wanted)


async def token(request: Request) -> Response:
    state: TargetState = request.app.state.target
    try:
        form = await read_form(request, MAX_FORM_BYTES)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type required")
        if grant_type == CLIENT_CREDENTIALS:
            client_id, secret = _client_credentials(request, form)
            found = await state.db.run(state.registry.check_secret, client_id, secret)
            if found is None:
                raise OAuthError("invalid_client", "client authentication failed", 401)
            scope, registration = found
            device_id, grant = client_id, CLIENT_CREDENTIALS
        elif grant_type == JWT_BEARER:
            assertion = form.get("assertion")
            if not assertion:
                raise OAuthError("invalid_request", "assertion required")
            device_id, scope, registration = await state.db.run(state.assertions.check, assertion)
            grant = "jwt_bearer"
        else:
            raise OAuthError("unsupported_grant_type", "grant_type not supported")
        scope = _narrow_scope(scope, form.get("scope"))
    except OAuthError as e:
        state.metrics.token_errors.labels(error=e.error).inc()
        raise
    access_token = state.issuer.mint(device_id, scope, registration=registration)
    state.metrics.tokens_issued.labels(grant=grant, alg=state.settings.alg).inc()
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": state.issuer.ttl_s,
            "scope": scope,
        },
        headers=NO_STORE,
    )


routes = [Route("/auth/token", token, methods=["POST"])]
