"""The bad-token corpus: ways to present a credential that a careful target must refuse.

Each case forges a request from a genuine token the device holds. Cases keep to forgeries a
client can make without the target's signing key, so most are refused for their signature; a
later ``fleetbench attack`` grows this list.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

__all__ = ["CASES", "Case", "ForgeContext", "Forged", "cases_for"]

_PYJWT = get_default_algorithms()


@dataclass(frozen=True)
class ForgeContext:
    """What a forger knows: a genuine token, the target's algorithm, and who is asking."""

    token: str
    token_alg: str
    device_id: str
    other_device_id: str


@dataclass(frozen=True)
class Forged:
    """A request to send: its ``Authorization`` value (None: no header) and the device path."""

    authorization: str | None
    device_id: str


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    forge: Callable[[ForgeContext], Forged]
    expected_status: int
    expected_reasons: frozenset[str]
    needs_device_path: bool = False  # meaningful only on /devices/{id}/... endpoints


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload)), signature


def _compact(header: dict[str, Any], claims: dict[str, Any], signature: str) -> str:
    def encode(obj: dict[str, Any]) -> str:
        return _b64(json.dumps(obj, separators=(",", ":")).encode())

    return f"{encode(header)}.{encode(claims)}.{signature}"


def _bearer(ctx: ForgeContext, token: str) -> Forged:
    return Forged(f"Bearer {token}", ctx.device_id)


@cache
def _stranger_key(alg: str) -> Any:
    """A key of the target's algorithm that the target has never seen (one per process)."""
    if alg.startswith("HS"):
        return secrets.token_bytes(64)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg.startswith("ES"):
        return ec.generate_private_key(ec.SECP384R1() if alg == "ES384" else ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sign(alg: str, key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    unsigned = _compact(header, claims, "")[:-1]
    return f"{unsigned}.{_b64(_PYJWT[alg].sign(unsigned.encode(), key))}"


def _with_header(ctx: ForgeContext, **changes: Any) -> Forged:
    header, claims, signature = _parts(ctx.token)
    return _bearer(ctx, _compact({**header, **changes}, claims, signature))


def _with_claims(ctx: ForgeContext, **changes: Any) -> Forged:
    header, claims, signature = _parts(ctx.token)
    return _bearer(ctx, _compact(header, {**claims, **changes}, signature))


def _alg_none(ctx: ForgeContext) -> Forged:
    header, claims, _ = _parts(ctx.token)
    return _bearer(ctx, _compact({**header, "alg": "none"}, claims, ""))


def _flip_signature(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    raw = bytearray(_unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    return _bearer(ctx, f"{head}.{payload}.{_b64(bytes(raw))}")


def _another_key(ctx: ForgeContext) -> Forged:
    header, claims, _ = _parts(ctx.token)
    return _bearer(ctx, _sign(ctx.token_alg, _stranger_key(ctx.token_alg), header, claims))


def _alg_switch(ctx: ForgeContext) -> Forged:
    header, claims, _ = _parts(ctx.token)
    alg = "HS512" if ctx.token_alg == "HS256" else "HS256"
    return _bearer(ctx, _sign(alg, _stranger_key(alg), {**header, "alg": alg}, claims))


def _stripped(ctx: ForgeContext) -> Forged:
    head, payload, _ = ctx.token.split(".")
    return _bearer(ctx, f"{head}.{payload}.")


def _oversized(ctx: ForgeContext) -> Forged:
    return _with_claims(ctx, pad="x" * 8192)


def _garbage(ctx: ForgeContext) -> Forged:
    return _bearer(ctx, binascii.hexlify(secrets.token_bytes(96)).decode())


SIGNATURE = frozenset({"signature"})

CASES: tuple[Case, ...] = (
    Case("alg_none", "header alg none, signature removed", _alg_none, 401, SIGNATURE),
    Case(
        "tampered_payload",
        "scope widened in the payload, original signature kept",
        lambda ctx: _with_claims(ctx, scope="telemetry:write config:read admin"),
        401,
        SIGNATURE,
    ),
    Case("tampered_signature", "one signature bit flipped", _flip_signature, 401, SIGNATURE),
    Case(
        "expired",
        "exp an hour in the past (cannot re-sign: the signature breaks too)",
        lambda ctx: _with_claims(ctx, exp=int(time.time()) - 3600),
        401,
        frozenset({"signature", "expired"}),
    ),
    Case(
        "wrong_audience",
        "aud of another API",
        lambda ctx: _with_claims(ctx, aud="urn:example:other-api"),
        401,
        frozenset({"signature", "claims"}),
    ),
    Case(
        "wrong_issuer",
        "iss of another issuer",
        lambda ctx: _with_claims(ctx, iss="https://evil.example"),
        401,
        frozenset({"signature", "claims"}),
    ),
    Case(
        "unknown_kid",
        "kid the target never issued",
        lambda ctx: _with_header(ctx, kid="unknown-" + secrets.token_hex(4)),
        401,
        SIGNATURE,
    ),
    Case(
        "another_key",
        "same claims signed by a key the target never saw",
        _another_key,
        401,
        SIGNATURE,
    ),
    Case(
        "alg_switch",
        "re-signed with an HMAC alg the target does not use",
        _alg_switch,
        401,
        SIGNATURE,
    ),
    Case("stripped_signature", "signature segment emptied", _stripped, 401, SIGNATURE),
    Case("oversized", "token over 8 KiB", _oversized, 401, frozenset({"malformed"})),
    Case("garbage", "random hex, not a JWS", _garbage, 401, frozenset({"malformed"})),
    Case(
        "typ_jwt",
        "typ changed from at+jwt to JWT",
        lambda ctx: _with_header(ctx, typ="JWT"),
        401,
        frozenset({"claims", "signature"}),
    ),
    Case(
        "no_token",
        "no Authorization header",
        lambda ctx: Forged(None, ctx.device_id),
        401,
        frozenset({"missing"}),
    ),
    Case(
        "other_device",
        "a genuine token on another device's path",
        lambda ctx: Forged(f"Bearer {ctx.token}", ctx.other_device_id),
        403,
        frozenset({"insufficient_scope"}),
        needs_device_path=True,
    ),
)


def cases_for(device_path: bool) -> tuple[Case, ...]:
    """The cases that make sense on an endpoint with (or without) a device id in its path."""
    return tuple(case for case in CASES if device_path or not case.needs_device_path)
