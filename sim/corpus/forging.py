"""Low-level forging: JWS segments encoded and decoded, tokens signed, headers and claims edited."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable
from typing import Any

from jwt.algorithms import get_default_algorithms

from sim.corpus.model import ForgeContext, Forged

PYJWT_ALGORITHMS = get_default_algorithms()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def token_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def compact(header: dict[str, Any], claims: dict[str, Any], signature: str) -> str:
    return f"{b64url(json_bytes(header))}.{b64url(json_bytes(claims))}.{signature}"


def bearer(ctx: ForgeContext, token: str) -> Forged:
    return Forged(f"Bearer {token}", ctx.device_id)


def sign_jws(alg: str, key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    unsigned = compact(header, claims, "")[:-1]
    return f"{unsigned}.{b64url(PYJWT_ALGORITHMS[alg].sign(unsigned.encode(), key))}"


def hmac_token(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    # Straight through hmac: PyJWT rightly refuses PEM and SSH text as an HMAC secret.
    unsigned = compact(header, claims, "")[:-1]
    return f"{unsigned}.{b64url(hmac.digest(secret, unsigned.encode(), 'sha256'))}"


def with_header(ctx: ForgeContext, **changes: Any) -> Forged:
    header, claims, signature = token_parts(ctx.token)
    return bearer(ctx, compact({**header, **changes}, claims, signature))


def without_header(ctx: ForgeContext, name: str) -> Forged:
    header, claims, signature = token_parts(ctx.token)
    header.pop(name, None)
    return bearer(ctx, compact(header, claims, signature))


def with_claims(ctx: ForgeContext, **changes: Any) -> Forged:
    header, claims, signature = token_parts(ctx.token)
    return bearer(ctx, compact(header, {**claims, **changes}, signature))


def without_claim(name: str) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, signature = token_parts(ctx.token)
        claims.pop(name, None)
        return bearer(ctx, compact(header, claims, signature))

    return forge


def raw_segments(
    ctx: ForgeContext, header: bytes | None = None, payload: bytes | None = None
) -> Forged:
    """The genuine token with its header or payload replaced by these exact bytes."""
    head, body, signature = ctx.token.split(".")
    head = head if header is None else b64url(header)
    body = body if payload is None else b64url(payload)
    return bearer(ctx, f"{head}.{body}.{signature}")


def with_signature(ctx: ForgeContext, signature: bytes) -> Forged:
    head, payload, _ = ctx.token.split(".")
    return bearer(ctx, f"{head}.{payload}.{b64url(signature)}")


def genuine_signature(ctx: ForgeContext) -> bytes:
    return unb64url(ctx.token.split(".")[2])
