"""Micro-measurements of token costs: one verification, its bare-signature ceiling, the naive way.

``micro_benchmark`` measures one algorithm in process, every figure in one run (ratios only mean
something measured together on a noisy machine):

- ``verify_us``: the target's own verifier (``Verifier.verify``), cache off;
- ``raw_verify_us``: a bare ``cryptography`` signature check with the same key (the ceiling);
- ``naive_verify_us``: ``jwt.decode(token, pem_or_secret, algorithms=[alg], ...)``, which parses
  the key on every call;
- ``cached_verify_us``: the verifier with its verified-token cache on (a hit still checks expiry
  and revocation);
- ``sign_us`` and ``token_bytes``: minting cost and size of one access token.

``python -m benchmarks.sign`` prints these; ``fleetbench compare`` and ``python -m benchmarks.wrk``
use them too.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding

from target.auth.tokens import TokenIssuer
from target.auth.verifier import Verifier
from target.jose.algorithms import SigningKey
from target.jose.jws import b64url_decode
from target.settings import Settings
from target.store.db import connect
from target.store.keys import KeyStore
from target.store.registry import registration_stamp

__all__ = ["DEVICE", "call_times_us", "micro_benchmark", "per_call_us", "raw_verifier"]

# The target's defaults, so token_bytes is the size of a real token for an id this long.
ISSUER = Settings.issuer
AUDIENCE = Settings.audience
DEVICE = "bench-device-0001"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def raw_verifier(key: SigningKey, message: bytes, signature: bytes) -> Callable[[], None]:
    """A bare cryptography check of ``signature`` over ``message``, prepared outside the timing."""
    hash_alg = _HASHES.get(key.alg[-3:], hashes.SHA256)
    family = key.alg[:2]
    if family == "HS":

        def check() -> None:
            mac = crypto_hmac.HMAC(key.public, hash_alg())
            mac.update(message)
            mac.verify(signature)

        return check
    if family == "ES":
        from jwt.utils import raw_to_der_signature

        der = raw_to_der_signature(signature, key.public.curve)
        return lambda: key.public.verify(der, message, ec.ECDSA(hash_alg()))
    if family == "RS":
        return lambda: key.public.verify(signature, message, padding.PKCS1v15(), hash_alg())
    if family == "PS":
        pss = padding.PSS(mgf=padding.MGF1(hash_alg()), salt_length=hash_alg().digest_size)
        return lambda: key.public.verify(signature, message, pss, hash_alg())
    return lambda: key.public.verify(signature, message)  # EdDSA


def call_times_us(fn: Callable[[], object], budget_s: float, repeats: int = 5) -> list[float]:
    """The mean time per call in µs of each of ``repeats`` back-to-back runs of ``fn``, each
    sized to take about ``budget_s / repeats``."""
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    number = max(1, int(number * (budget_s / repeats) / max(elapsed, 1e-9)))
    return [t / number * 1e6 for t in timer.repeat(repeat=repeats, number=number)]


def per_call_us(fn: Callable[[], object], budget_s: float) -> float:
    """Best-of-five mean time per call in µs, each repeat sized to take about ``budget_s / 5``."""
    return min(call_times_us(fn, budget_s))


def micro_benchmark(alg: str, budget_s: float = 1.0) -> dict[str, Any]:
    """Measure one algorithm in process; about ``5 * budget_s`` seconds."""
    keys = KeyStore(connect(":memory:"), alg, grace_s=0)
    key = keys.current
    issuer = TokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, ttl_s=3600)
    registration = registration_stamp(time.time())  # as the target's tokens carry, for their size
    token = issuer.mint(DEVICE, "telemetry:write config:read", registration=registration)
    active = frozenset({DEVICE})

    def verifier(cache_size: int) -> Verifier:
        return Verifier(
            {key.kid: key},
            algorithms=frozenset({alg}),
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway_s=10,
            is_active=active.__contains__,
            cache_size=cache_size,
        )

    plain, cached = verifier(0), verifier(1024)
    plain.verify(token)  # fills the header cache, as a running server would have
    cached.verify(token)
    header, payload, signature = token.split(".")
    raw = raw_verifier(key, f"{header}.{payload}".encode(), b64url_decode(signature))
    raw()
    naive_key: bytes | str = key.public
    if not key.symmetric:
        naive_key = key.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def naive() -> None:
        jwt.decode(token, naive_key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)

    naive()
    return {
        "sign_us": per_call_us(
            lambda: issuer.mint(DEVICE, "telemetry:write config:read", registration=registration),
            budget_s,
        ),
        "verify_us": per_call_us(lambda: plain.verify(token), budget_s),
        "raw_verify_us": per_call_us(raw, budget_s),
        "naive_verify_us": per_call_us(naive, budget_s),
        "cached_verify_us": per_call_us(lambda: cached.verify(token), budget_s),
        "token_bytes": len(token),
    }
