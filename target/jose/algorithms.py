"""Signing algorithms the target supports, as one registry.

Each entry knows how to make a key, how to store and reload it, and which PyJWT algorithm object
signs and verifies with it. Behaviour is chosen from the registry, never from if/elif chains on
the algorithm name (the shape of PyJWT's ``get_default_algorithms``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from jwt.algorithms import Algorithm, get_default_algorithms

from target.jose.vocabulary import ALG_NAMES, AlgName, generate_private_key

__all__ = [
    "ALGORITHMS",
    "ALG_NAMES",
    "ASSERTION_ALGORITHMS",
    "AlgName",
    "AlgorithmSpec",
    "SignatureScheme",
    "SigningKey",
    "algorithm_list",
    "jwk_thumbprint",
]

# Algorithms a device may sign its RFC 7523 assertion with.
ASSERTION_ALGORITHMS: tuple[str, ...] = ("ES256", "EdDSA", "RS256")

MIN_HMAC_SECRET_BYTES = 32

_PYJWT = get_default_algorithms()


@dataclass(frozen=True)
class SigningKey:
    """One signing key: its id, algorithm and key objects, parsed once."""

    kid: str
    alg: str
    algorithm: Algorithm  # the PyJWT object that signs and verifies for ``alg``
    private: Any  # a cryptography private key or the HMAC secret bytes; None for a verify-only key
    public: Any  # a cryptography public key, or the HMAC secret bytes

    @property
    def symmetric(self) -> bool:
        return isinstance(self.public, bytes)

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"

    @cached_property
    def scheme(self) -> SignatureScheme:
        """How this key checks signatures, with its padding and hash objects made once rather
        than per call (the hot path of every request)."""
        return _SIGNATURE_SCHEMES[self.alg](self.public)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (as the JWS carries it) is this key's over ``message``."""
        prepared = self.scheme.prepare(signature)
        return prepared is not None and self.scheme.check(message, prepared)


SignatureCheck = Callable[[bytes, bytes], bool]


class SignatureScheme(NamedTuple):
    """A signature check in two steps, so a verifier can keep the first step's result for a token
    it sees again while still checking the signature every time.

    ``prepare(signature)`` turns the JWS signature bytes into what the library checks (DER for
    ECDSA), or None when they cannot be a signature of this key (a wrong length); it is parsing
    only, no cryptography. ``check(message, prepared)`` is the cryptographic check.
    """

    prepare: Callable[[bytes], bytes | None]
    check: SignatureCheck


def _as_is(signature: bytes) -> bytes:
    return signature


def _hmac_scheme(digest: str) -> Callable[[bytes], SignatureScheme]:
    def for_key(secret: bytes) -> SignatureScheme:
        def check(message: bytes, signature: bytes) -> bool:
            return hmac.compare_digest(hmac.digest(secret, message, digest), signature)

        return SignatureScheme(_as_is, check)

    return for_key


def _der_integer(unsigned: bytes) -> bytes:
    """A DER INTEGER of a big-endian unsigned number of at most 126 bytes: minimal length, and a
    zero byte in front when the top bit is set (it would read as negative)."""
    unsigned = unsigned.lstrip(b"\0") or b"\0"
    if unsigned[0] & 0x80:
        unsigned = b"\0" + unsigned
    return b"\x02" + bytes((len(unsigned),)) + unsigned


def _raw_to_der(signature: bytes, size: int) -> bytes:
    """JWS's fixed-width ``r || s`` (RFC 7518 §3.4) as the DER ``SEQUENCE`` cryptography verifies:
    the same bytes ``encode_dss_signature`` makes, without two int conversions (about 0.7 µs of
    2.5 a request); short-form lengths suffice for the P-256 and P-384 widths used here."""
    body = _der_integer(signature[:size]) + _der_integer(signature[size:])
    return b"\x30" + bytes((len(body),)) + body


def _ecdsa_scheme(
    hash_alg: type[hashes.HashAlgorithm], size: int
) -> Callable[[Any], SignatureScheme]:
    def for_key(public: ec.EllipticCurvePublicKey) -> SignatureScheme:
        ecdsa = ec.ECDSA(hash_alg())

        def to_der(signature: bytes) -> bytes | None:
            # JWS carries r || s, fixed width (RFC 7518 §3.4); cryptography wants DER.
            return _raw_to_der(signature, size) if len(signature) == 2 * size else None

        def check(message: bytes, der: bytes) -> bool:
            try:
                public.verify(der, message, ecdsa)
            except InvalidSignature:
                return False
            return True

        return SignatureScheme(to_der, check)

    return for_key


def _rsa_scheme(pad: padding.AsymmetricPadding) -> Callable[[Any], SignatureScheme]:
    def for_key(public: rsa.RSAPublicKey) -> SignatureScheme:
        sha256 = hashes.SHA256()

        def check(message: bytes, signature: bytes) -> bool:
            try:
                public.verify(signature, message, pad, sha256)
            except InvalidSignature:
                return False
            return True

        return SignatureScheme(_as_is, check)

    return for_key


def _eddsa_scheme(public: ed25519.Ed25519PublicKey) -> SignatureScheme:
    def check(message: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return SignatureScheme(_as_is, check)


_SIGNATURE_SCHEMES: dict[str, Callable[[Any], SignatureScheme]] = {
    "HS256": _hmac_scheme("sha256"),
    "HS384": _hmac_scheme("sha384"),
    "HS512": _hmac_scheme("sha512"),
    "ES256": _ecdsa_scheme(hashes.SHA256, 32),
    "ES384": _ecdsa_scheme(hashes.SHA384, 48),
    "EdDSA": _eddsa_scheme,
    "RS256": _rsa_scheme(padding.PKCS1v15()),
    # RFC 7518 §3.5: the salt is as long as the hash output.
    "PS256": _rsa_scheme(padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)),
}


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    pyjwt: Algorithm
    generate: Callable[[], Any]
    symmetric: bool

    def private_bytes(self, private: Any) -> bytes:
        """Serialise a private key for storage (PKCS#8 PEM, or the raw HMAC secret)."""
        if self.symmetric:
            return bytes(private)
        return bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def load_private(self, data: bytes) -> Any:
        """Parse stored private material back into a key object (the inverse of private_bytes)."""
        if self.symmetric:
            if len(data) < MIN_HMAC_SECRET_BYTES:
                raise ValueError(
                    f"an {self.name} secret needs at least {MIN_HMAC_SECRET_BYTES} bytes"
                )
            return bytes(data)
        key = serialization.load_pem_private_key(data, password=None)
        self.pyjwt.prepare_key(key)  # raises if the key type does not fit the algorithm
        return key

    def make_key(self, private: Any, kid: str | None = None) -> SigningKey:
        public = private if self.symmetric else private.public_key()
        if kid is None:
            kid = (
                secrets.token_urlsafe(12)
                if self.symmetric
                else jwk_thumbprint(self.public_jwk(public))
            )
        return SigningKey(kid, self.name, self.pyjwt, private, public)

    def verify_only_key(self, public: Any, kid: str) -> SigningKey:
        """A key that can only verify: a device's registered public key, say."""
        self.pyjwt.prepare_key(public)  # raises if the key type does not fit the algorithm
        return SigningKey(kid, self.name, self.pyjwt, None, public)

    def public_jwk(self, public: Any) -> dict[str, Any]:
        if self.symmetric:
            raise ValueError("symmetric keys have no public JWK")
        jwk: dict[str, Any] = self.pyjwt.to_jwk(public, as_dict=True)
        return jwk


# Key making comes from the shared vocabulary, so the simulator makes its keys the same way.
ALGORITHMS: dict[str, AlgorithmSpec] = {
    name: AlgorithmSpec(
        name, _PYJWT[name], partial(generate_private_key, name), name.startswith("HS")
    )
    for name in ALG_NAMES
}

# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def algorithm_list(text: str) -> list[str]:
    """``"HS256, ES256"`` as algorithm names; ValueError naming the first unknown one."""
    algs = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in algs if a not in ALG_NAMES]
    if unknown or not algs:
        raise ValueError(
            f"unknown algorithm {unknown[0] if unknown else '(none)'}; "
            f"choose from {', '.join(ALG_NAMES)}"
        )
    return algs
