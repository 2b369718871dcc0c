"""The attacker's own keys, JWKS and certificate: what a hostile key URL or embedded key offers."""

from __future__ import annotations

import datetime
import hashlib
import json
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from sim.corpus.forging import PYJWT_ALGORITHMS
from target.jose.vocabulary import generate_private_key


@cache
def stranger_key(alg: str) -> Any:
    """A key of ``alg`` that the target has never seen (one per process)."""
    return generate_private_key(alg)


def stranger_kid(alg: str) -> str:
    return "attacker-" + hashlib.sha256(stranger_jwk_text(alg).encode()).hexdigest()[:16]


@cache
def stranger_jwk_text(alg: str) -> str:
    key = stranger_key(alg)
    public = key if isinstance(key, bytes) else key.public_key()
    text: str = PYJWT_ALGORITHMS[alg].to_jwk(public)
    return text


def stranger_jwks(alg: str) -> dict[str, Any]:
    """The attacker's key set, as a hostile ``jku`` would serve it."""
    jwk = json.loads(stranger_jwk_text(alg))
    jwk.update(kid=stranger_kid(alg), alg=alg, use="sig")
    return {"keys": [jwk]}


@cache
def stranger_certificate(alg: str) -> x509.Certificate:
    """A self-signed certificate for the attacker's key (an EC key for HMAC algorithms)."""
    key = stranger_key(alg)
    if isinstance(key, bytes):
        key = stranger_key("ES256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetbench attacker")])
    now = datetime.datetime.now(datetime.UTC)
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, digest)
    )
