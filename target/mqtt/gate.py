"""CONNECT authentication: username = device id, password = access token or device-signed JWT.

Checked by the HTTP API's own verifier (signature, ``exp`` with the leeway, audience, key ring,
revocation) or, for a device-signed JWT, by an :class:`AssertionChecker` like the token
endpoint's (``iss`` = ``sub`` = the device id, its registered key, a single-use ``jti``) whose
audience is the API's, not the issuer's: an assertion made for the token endpoint is not a
CONNECT password, nor the other way round.
"""

from __future__ import annotations

import time

from amqtt.mqtt.connack import (
    BAD_USERNAME_PASSWORD,
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
    SERVER_UNAVAILABLE,
)

from target.auth.assertions import AssertionChecker
from target.auth.verifier import AccessClaims
from target.errors import (
    ConnectRefused,
    DatabaseUnavailable,
    ExpiredTokenError,
    OAuthError,
    TokenError,
)
from target.jose.jws import b64url_decode, decode_json_object, split_compact
from target.state import TargetState

__all__ = ["TELEMETRY_SCOPE", "ConnectGate"]

TELEMETRY_SCOPE = "telemetry:write"
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def _is_access_token(password: str) -> bool:
    """Whether the password says it is one of our access tokens (``typ: at+jwt``); anything
    else is checked as a device-signed JWT. Raises TokenError when it is not a JWS at all."""
    header = decode_json_object(b64url_decode(split_compact(password)[0]), "header")
    typ = header.get("typ")
    return isinstance(typ, str) and typ.lower() in ACCESS_TOKEN_TYPES


class ConnectGate:
    """Admits a CONNECT or raises :class:`ConnectRefused` with the CONNACK code to send."""

    def __init__(self, state: TargetState) -> None:
        self._state = state
        settings = state.settings
        self._device_jwts = AssertionChecker(
            state.db.writer,
            state.registry,
            audience=settings.audience,
            leeway_s=settings.leeway,
            max_lifetime_s=settings.token_ttl,
        )
        self._histograms = state.metrics.mqtt_verify_seconds

    def closes_at(self, grant: AccessClaims) -> float:
        """When a session on ``grant`` is closed for its token's expiry (wall clock): the
        moment :meth:`lapsed` starts to say ``token_expired``."""
        return self._state.verifier.honoured_until(grant)

    async def admit(
        self, client_id: str | None, username: str | None, password: str | None
    ) -> AccessClaims:
        """The grant the CONNECT proves, for the device named by ``username``."""
        if not username or not password:
            raise ConnectRefused(BAD_USERNAME_PASSWORD, "no_credentials")
        if client_id != username:
            raise ConnectRefused(IDENTIFIER_REJECTED, "client_id")
        started = time.perf_counter()
        alg: str = self._state.settings.alg
        try:
            if _is_access_token(password):
                grant = self._state.verifier.verify(password)
            else:
                proven = await self._state.db.run(self._device_jwts.prove, password)
                alg = proven.alg
                grant = AccessClaims(
                    proven.device_id,
                    frozenset(proven.scope.split()),
                    proven.exp,
                    proven.alg,
                    {},
                    reg=proven.registration,
                )
        except TokenError as e:
            self._observe(alg, started)
            if e.reason == "revoked":
                raise ConnectRefused(NOT_AUTHORIZED, "revoked") from e
            raise ConnectRefused(BAD_USERNAME_PASSWORD, e.reason) from e
        except OAuthError as e:
            # The token endpoint's answer to a bad assertion: one answer for an unknown device,
            # a device without a key and a wrong signature, so CONNECT cannot list devices.
            self._observe(alg, started)
            raise ConnectRefused(BAD_USERNAME_PASSWORD, "device_jwt") from e
        except DatabaseUnavailable as e:
            raise ConnectRefused(SERVER_UNAVAILABLE, "unavailable") from e
        self._observe(alg, started)
        if grant.sub != username:
            raise ConnectRefused(BAD_USERNAME_PASSWORD, "username")
        if TELEMETRY_SCOPE not in grant.scopes:
            raise ConnectRefused(NOT_AUTHORIZED, "scope")
        return grant

    def lapsed(self, grant: AccessClaims) -> str | None:
        """Why a session's grant is no longer honoured (``token_expired``: past exp + leeway, or
        ``revoked``: the device revoked, deleted or registered again), or None while it is. The
        one rule a session is held to: by its expiry timer, and on every PUBLISH and SUBSCRIBE."""
        try:
            self._state.verifier.still_valid(grant, time.time())
        except ExpiredTokenError:
            return "token_expired"
        except TokenError:
            return "revoked"
        return None

    def _observe(self, alg: str, started: float) -> None:
        self._histograms.labels(alg=alg).observe(time.perf_counter() - started)
