"""The token-endpoint catalogue: forged credentials and assertions with their RFC 6749 errors."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from sim.corpus.bearer_cases import CASES
from sim.corpus.forgers import public_key_forms
from sim.corpus.forging import compact, hmac_token, sign_jws
from sim.corpus.model import TokenCase, TokenContext, TokenForged
from sim.corpus.strangers import stranger_jwk_text, stranger_key
from sim.fleet.model import Device
from target.jose.vocabulary import JWT_BEARER, client_credentials_form


def _assertion_claims(ctx: TokenContext, device: Device, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": device.id,
        "sub": device.id,
        "aud": ctx.issuer,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
    }
    return {**claims, **changes}


def _assertion(
    ctx: TokenContext,
    *,
    device: Device | None = None,
    signer: Device | None = None,
    header: dict[str, Any] | None = None,
    **changes: Any,
) -> TokenForged:
    """A jwt-bearer request for ``device`` (default ours), signed by ``signer``'s key."""
    device = device or ctx.device
    signer = signer or device
    alg = signer.alg or "ES256"
    claims = _assertion_claims(ctx, device, **changes)
    token = sign_jws(
        alg, signer.private_key(), {"alg": alg, "typ": "JWT", **(header or {})}, claims
    )
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _assertion_none(ctx: TokenContext) -> TokenForged:
    claims = _assertion_claims(ctx, ctx.device)
    token = compact({"alg": "none", "typ": "JWT"}, claims, "")
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _assertion_hmac_public(ctx: TokenContext) -> TokenForged:
    public = ctx.device.private_key().public_key()
    secret = public_key_forms(public)["pem"]
    token = hmac_token(secret, {"alg": "HS256", "typ": "JWT"}, _assertion_claims(ctx, ctx.device))
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _assertion_embedded_jwk(ctx: TokenContext) -> TokenForged:
    alg = ctx.device.alg or "ES256"
    jwk = json.loads(stranger_jwk_text(alg))
    claims = _assertion_claims(ctx, ctx.device)
    token = sign_jws(alg, stranger_key(alg), {"alg": alg, "typ": "JWT", "jwk": jwk}, claims)
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _client_credentials(client_id: str, secret: str) -> TokenForged:
    return TokenForged(client_credentials_form(client_id, secret))


INVALID_CLIENT = frozenset({"invalid_client"})


INVALID_GRANT = frozenset({"invalid_grant"})


def _token_cases() -> Iterator[TokenCase]:
    yield TokenCase(
        "client_wrong_secret",
        "client_credentials with a wrong secret",
        lambda c: _client_credentials(c.device.id, secrets.token_urlsafe(32)),
        401,
        INVALID_CLIENT,
    )
    yield TokenCase(
        "client_other_secret",
        "client_credentials: our id with another device's secret",
        lambda c: _client_credentials(c.device.id, c.other.secret),
        401,
        INVALID_CLIENT,
    )
    yield TokenCase(
        "client_unknown",
        "client_credentials for a client the target does not know",
        lambda c: _client_credentials("unknown-" + secrets.token_hex(6), secrets.token_urlsafe(32)),
        401,
        INVALID_CLIENT,
    )
    yield TokenCase(
        "client_basic_wrong_secret",
        "HTTP Basic client authentication with a wrong secret",
        lambda c: TokenForged(
            {"grant_type": "client_credentials"}, basic=(c.device.id, secrets.token_urlsafe(32))
        ),
        401,
        INVALID_CLIENT,
    )
    yield TokenCase(
        "client_revoked",
        "client_credentials of a revoked device, with its genuine secret",
        lambda c: _client_credentials(c.revoked.id, c.revoked.secret),
        401,
        INVALID_CLIENT,
    )
    yield TokenCase(
        "assertion_other_key",
        "an assertion for our device signed by another device's key",
        lambda c: _assertion(c, signer=c.other),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_foreign_aud",
        "an assertion whose aud is another issuer",
        lambda c: _assertion(c, aud="https://evil.example/token"),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_expired",
        "an assertion that expired an hour ago",
        lambda c: _assertion(c, iat=int(time.time()) - 3900, exp=int(time.time()) - 3600),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_too_long",
        "an assertion with exp - iat = 3,600 s (the bound is 600 s)",
        lambda c: _assertion(c, exp=int(time.time()) + 3600),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_replayed_jti",
        "a genuine assertion sent twice (the second is judged)",
        lambda c: TokenForged(_assertion(c).form, replay=True),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_iss_other",
        "an assertion with iss another device, sub ours",
        lambda c: _assertion(c, iss=c.other.id),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_revoked",
        "an assertion of a revoked device, signed with its genuine key",
        lambda c: _assertion(c, device=c.revoked),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_alg_none",
        "an unsigned assertion (alg none)",
        _assertion_none,
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_hmac_public_key",
        "an assertion HS256 signed with the device's own public key (PEM)",
        _assertion_hmac_public,
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_embedded_jwk",
        "an assertion signed by the attacker, its key embedded as jwk",
        _assertion_embedded_jwk,
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "assertion_access_token",
        "the genuine access token presented as an assertion",
        lambda c: TokenForged({"grant_type": JWT_BEARER, "assertion": c.access_token}),
        400,
        INVALID_GRANT,
    )
    yield TokenCase(
        "grant_password",
        "the password grant, which the target does not offer",
        lambda c: TokenForged(
            {"grant_type": "password", "username": c.device.id, "password": c.device.secret}
        ),
        400,
        frozenset({"unsupported_grant_type"}),
    )
    yield TokenCase(
        "scope_widened",
        "client_credentials asking for a scope beyond the device's",
        lambda c: TokenForged(
            {**_client_credentials(c.device.id, c.device.secret).form, "scope": "admin"}
        ),
        400,
        frozenset({"invalid_scope"}),
    )


TOKEN_CASES: tuple[TokenCase, ...] = tuple(_token_cases())


assert len({case.name for case in TOKEN_CASES} | {case.name for case in CASES}) == len(CASES) + len(
    TOKEN_CASES
)
