"""Access-token minting (RFC 9068): claims here, signing delegated to PyJWT with a prepared key."""

from __future__ import annotations

import secrets
import time

import jwt

from target.store.keys import KeyStore

__all__ = ["TokenIssuer"]


class TokenIssuer:
    def __init__(self, keys: KeyStore, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def mint(
        self,
        device_id: str,
        scope: str,
        now: float | None = None,
        *,
        registration: int | None = None,
    ) -> str:
        """A signed access token for ``device_id`` with ``scope``, valid for ``ttl_s`` seconds;
        ``registration`` (the device's registration stamp) binds it to this registration."""
        issued_at = int(time.time() if now is None else now)
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": device_id,
            "client_id": device_id,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.ttl_s,
            "jti": secrets.token_urlsafe(16),
            "scope": scope,
        }
        if registration is not None:
            claims["reg"] = registration
        key = self._keys.current
        return jwt.encode(
            claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
        )
