"""Device-signed client assertions for the RFC 7523 ``jwt-bearer`` grant."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from typing import NamedTuple

from target.errors import OAuthError, TokenError
from target.jose.algorithms import ALGORITHMS, ASSERTION_ALGORITHMS, SigningKey
from target.jose.jws import b64url_decode, decode_json_object, split_compact, verify_signature
from target.jose.vocabulary import FORBIDDEN_HEADERS, numeric_claim
from target.store.registry import DeviceRegistry

__all__ = ["MAX_ASSERTION_LIFETIME_S", "AssertionChecker", "Proven"]

MAX_ASSERTION_LIFETIME_S = 600


NOT_VERIFIED = "assertion is not signed by an active device's registered key"


@functools.cache
def _stand_in_key(alg: str) -> SigningKey:
    """A key of ``alg`` no device has, to spend a signature check's work on when there is no
    key to check against (made once per process, on first need)."""
    spec = ALGORITHMS[alg]
    return spec.make_key(spec.generate(), "stand-in")


def _grant_error(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def _claim_error(reason: str) -> OAuthError:
    return _grant_error(f"assertion {reason}")


class Proven(NamedTuple):
    """What a verified assertion proves."""

    device_id: str
    scope: str
    registration: int
    alg: str
    exp: float


class AssertionChecker:
    """Checks an assertion against its device's registered key and spends its ``jti`` once.

    The token endpoint's checker takes the issuer as ``audience`` and assertions of at most
    600 s; the MQTT broker's (a device-signed JWT as CONNECT password) takes the API's audience,
    so neither accepts the other's, and the access token's lifetime.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        registry: DeviceRegistry,
        *,
        audience: str,
        leeway_s: float,
        max_lifetime_s: float = MAX_ASSERTION_LIFETIME_S,
    ) -> None:
        self._conn = conn
        self._registry = registry
        self._audience = audience
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_lifetime_s

    def check(self, assertion: str, now: float | None = None) -> tuple[str, str, int]:
        """The device id, scope and registration the assertion proves, or ``invalid_grant``."""
        proven = self.prove(assertion, now)
        return proven.device_id, proven.scope, proven.registration

    def prove(self, assertion: str, now: float | None = None) -> Proven:
        """What the assertion proves (with its algorithm and expiry), or ``invalid_grant``."""
        now = time.time() if now is None else now
        try:
            header_segment, payload_segment, signature_segment = split_compact(assertion)
            header = decode_json_object(b64url_decode(header_segment), "header")
            claims = decode_json_object(b64url_decode(payload_segment), "payload")
        except TokenError as e:
            raise _grant_error("assertion is malformed") from e
        device_id = claims.get("iss")
        if not isinstance(device_id, str) or claims.get("sub") != device_id:
            raise _grant_error("assertion iss and sub must both be the device id")
        if any(name in header for name in FORBIDDEN_HEADERS):
            raise _grant_error("assertion header parameter not allowed")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASSERTION_ALGORITHMS:
            raise _grant_error("assertion alg not allowed")
        # From here to a good signature, an unknown id, a device without a key, a key of another
        # algorithm and a wrong signature get the same answer after the same work (a signature
        # check under the header's algorithm), so the grant cannot be used to list devices.
        found = self._registry.assertion_key(device_id)
        signing_input = f"{header_segment}.{payload_segment}".encode()
        if found is None or found[0].alg != alg:
            with contextlib.suppress(TokenError):
                verify_signature(signing_input, signature_segment, _stand_in_key(alg))
            raise _grant_error(NOT_VERIFIED)
        key, scope, registration = found
        try:
            verify_signature(signing_input, signature_segment, key)
        except TokenError as e:
            raise _grant_error(NOT_VERIFIED) from e
        aud = claims.get("aud")
        if not (aud == self._audience or (isinstance(aud, list) and self._audience in aud)):
            raise _grant_error("assertion aud is not this issuer")
        exp = numeric_claim(claims, "exp", _claim_error)
        iat = numeric_claim(claims, "iat", _claim_error)
        if exp <= now - self._leeway_s:
            raise _grant_error("assertion has expired")
        if iat > now + self._leeway_s:
            raise _grant_error("assertion iat is in the future")
        if exp - iat > self._max_lifetime_s:
            raise _grant_error(f"assertion lifetime exceeds {self._max_lifetime_s:.0f} s")
        if "nbf" in claims and numeric_claim(claims, "nbf", _claim_error) > now + self._leeway_s:
            raise _grant_error("assertion not yet valid")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
            raise _grant_error("assertion jti missing")
        self._spend_jti(device_id, jti, exp + self._leeway_s, now)
        return Proven(device_id, scope, registration, alg, exp)

    def _spend_jti(self, device_id: str, jti: str, expires_at: float, now: float) -> None:
        try:
            self._conn.execute(  # one statement: its own transaction
                "INSERT INTO used_jti (device_id, jti, expires_at) VALUES (?, ?, ?)",
                (device_id, jti, expires_at),
            )
        except sqlite3.IntegrityError as e:
            raise _grant_error("assertion jti already used") from e

    def forget_expired(self, now: float | None = None) -> None:
        """Drop spent ``jti`` values whose assertions could no longer be replayed anyway."""
        self._conn.execute(
            "DELETE FROM used_jti WHERE expires_at < ?", (time.time() if now is None else now,)
        )
