"""The bad-token corpus: ways to present a credential that a careful target must refuse.

Every case is built from what an attacker really has: a genuine access token obtained through the
token endpoint, the device's own credentials, the target's public keys (``/.well-known/jwks.json``)
and keys of its own. It never uses the target's private key, so a case that breaks one rule of a
signed token (an ``exp`` in the past, a wrong ``aud``) breaks the signature too, and a careful
target refuses it for its signature; that is the answer expected.

Two kinds of case:

- :class:`Case`: a request to a protected endpoint with a forged ``Authorization`` value, judged
  by status and RFC 6750 refusal class (``malformed``, ``signature``, ``claims``, ``expired``,
  ``revoked``; ``missing`` for a challenge without an error code; ``insufficient_scope``).
  ``fleetbench attack`` sends all of them; the rejection scenario sends those that need nothing
  beyond a held token (:func:`cases_for`).
- :class:`TokenCase`: a forged request to the token endpoint, judged by status and the RFC 6749
  ``error`` code. Sent by ``fleetbench attack`` only.

``expected_reasons`` lists every class a careful verifier may give. A forgery broken twice (say,
a payload that is not a JSON object under the original signature) may be refused for either
fault, depending on what the verifier checks first; both are right answers.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from jwt.algorithms import get_default_algorithms

from sim.fleet import Device
from target.jose import JWT_BEARER, client_credentials_form, generate_private_key

__all__ = [
    "CASES",
    "TOKEN_CASES",
    "Case",
    "Endpoint",
    "ForgeContext",
    "Forged",
    "Need",
    "TokenCase",
    "TokenContext",
    "TokenForged",
    "cases_for",
    "common_secrets",
    "find_common_secret",
]

_PYJWT = get_default_algorithms()
MAX_TOKEN_BYTES = 8192
# The P-256 group order n: r or s equal to n (or 0) must never verify.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# The Ed25519 group order L: a signature whose S is not below L is malleable and must be refused.
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493

Endpoint = Literal["config", "telemetry", "data"]
# What a case needs beyond a held token: a device path, the target's public key, a loopback
# listener for jku/x5u, a revoked device's token, a token of narrower scope; "attack_only" marks
# cases too heavy for load traffic (1 MiB per request measures the network, not auth).
Need = Literal[
    "device_path", "public_key", "listener", "revoked_token", "scoped_token", "attack_only"
]


# -- bearer cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgeContext:
    """What a forger knows: a genuine token, the target's algorithm, and who is asking.

    The optional fields are filled by ``fleetbench attack``: ``public_key`` is the target's
    verification key from its JWKS (for an HMAC target, a public key it holds for a device),
    ``listener_url`` a loopback listener the attack itself opened, ``revoked_token`` a genuine
    token of a device revoked since, ``scoped_token`` a genuine token with scope ``config:read``.
    """

    token: str
    token_alg: str
    device_id: str
    other_device_id: str
    public_key: Any = None
    listener_url: str | None = None
    revoked_token: str | None = None
    revoked_device_id: str | None = None
    scoped_token: str | None = None


@dataclass(frozen=True)
class Forged:
    """A request to send: its ``Authorization`` value (None: no header), the device path, and
    the endpoint (None: the caller's own choice)."""

    authorization: str | None
    device_id: str
    endpoint: Endpoint | None = None


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    description: str
    forge: Callable[[ForgeContext], Forged]
    expected_status: int
    expected_reasons: frozenset[str]
    needs: frozenset[Need] = frozenset()

    @property
    def needs_device_path(self) -> bool:  # meaningful only on /devices/{id}/... endpoints
        return "device_path" in self.needs


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload)), signature


def _compact(header: dict[str, Any], claims: dict[str, Any], signature: str) -> str:
    return f"{_b64(_json(header))}.{_b64(_json(claims))}.{signature}"


def _bearer(ctx: ForgeContext, token: str) -> Forged:
    return Forged(f"Bearer {token}", ctx.device_id)


@cache
def _stranger_key(alg: str) -> Any:
    """A key of ``alg`` that the target has never seen (one per process)."""
    return generate_private_key(alg)


def _stranger_kid(alg: str) -> str:
    return "attacker-" + hashlib.sha256(_stranger_jwk_text(alg).encode()).hexdigest()[:16]


@cache
def _stranger_jwk_text(alg: str) -> str:
    key = _stranger_key(alg)
    public = key if isinstance(key, bytes) else key.public_key()
    text: str = _PYJWT[alg].to_jwk(public)
    return text


def stranger_jwks(alg: str) -> dict[str, Any]:
    """The attacker's key set, as a hostile ``jku`` would serve it."""
    jwk = json.loads(_stranger_jwk_text(alg))
    jwk.update(kid=_stranger_kid(alg), alg=alg, use="sig")
    return {"keys": [jwk]}


@cache
def stranger_certificate(alg: str) -> x509.Certificate:
    """A self-signed certificate for the attacker's key (an EC key for HMAC algorithms)."""
    key = _stranger_key(alg)
    if isinstance(key, bytes):
        key = _stranger_key("ES256")
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


def _sign(alg: str, key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    unsigned = _compact(header, claims, "")[:-1]
    return f"{unsigned}.{_b64(_PYJWT[alg].sign(unsigned.encode(), key))}"


def _hmac_token(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    # Straight through hmac: PyJWT rightly refuses PEM and SSH text as an HMAC secret.
    unsigned = _compact(header, claims, "")[:-1]
    return f"{unsigned}.{_b64(hmac.digest(secret, unsigned.encode(), 'sha256'))}"


def _with_header(ctx: ForgeContext, **changes: Any) -> Forged:
    header, claims, signature = _parts(ctx.token)
    return _bearer(ctx, _compact({**header, **changes}, claims, signature))


def _without_header(ctx: ForgeContext, name: str) -> Forged:
    header, claims, signature = _parts(ctx.token)
    header.pop(name, None)
    return _bearer(ctx, _compact(header, claims, signature))


def _with_claims(ctx: ForgeContext, **changes: Any) -> Forged:
    header, claims, signature = _parts(ctx.token)
    return _bearer(ctx, _compact(header, {**claims, **changes}, signature))


def _without_claim(name: str) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, signature = _parts(ctx.token)
        claims.pop(name, None)
        return _bearer(ctx, _compact(header, claims, signature))

    return forge


def _raw_segments(
    ctx: ForgeContext, header: bytes | None = None, payload: bytes | None = None
) -> Forged:
    """The genuine token with its header or payload replaced by these exact bytes."""
    head, body, signature = ctx.token.split(".")
    head = head if header is None else _b64(header)
    body = body if payload is None else _b64(payload)
    return _bearer(ctx, f"{head}.{body}.{signature}")


def _with_signature(ctx: ForgeContext, signature: bytes) -> Forged:
    head, payload, _ = ctx.token.split(".")
    return _bearer(ctx, f"{head}.{payload}.{_b64(signature)}")


def _genuine_signature(ctx: ForgeContext) -> bytes:
    return _unb64(ctx.token.split(".")[2])


# -- format and encoding


def _segments(count: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        parts = ctx.token.split(".")
        extra = [_b64(b"{}"), _b64(secrets.token_bytes(16))]
        return _bearer(ctx, ".".join((parts + extra)[:count]))

    return forge


def _padded_header(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    padded = base64.urlsafe_b64encode(_unb64(head)).decode()
    if not padded.endswith("="):  # a header whose length is a multiple of 3: pad it ourselves
        padded = base64.urlsafe_b64encode(_unb64(head) + b" ").decode()
    return _bearer(ctx, f"{padded}.{payload}.{signature}")


def _standard_alphabet(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    # '~' turns into '+' and '/' in standard base64; the header means the same with spaces added.
    header = _unb64(head).replace(b",", b', "x":"~~~",', 1)
    standard = base64.b64encode(header).decode().rstrip("=")
    return _bearer(ctx, f"{standard}.{payload}.{signature}")


def _nested(depth: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, _, _ = _parts(ctx.token)
        text = _json(header)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
        return _raw_segments(ctx, header=text)

    return forge


def _duplicate_header(name: str, value: Any) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, _, _ = _parts(ctx.token)
        text = _json(header)[:-1] + b"," + _json({name: value})[1:]
        return _raw_segments(ctx, header=text)

    return forge


def _duplicate_claim(ctx: ForgeContext) -> Forged:
    _, claims, _ = _parts(ctx.token)
    text = _json(claims)[:-1] + b"," + _json({"sub": ctx.other_device_id})[1:]
    return _raw_segments(ctx, payload=text)


def _header_bytes(data: bytes) -> Callable[[ForgeContext], Forged]:
    return lambda ctx: _raw_segments(ctx, header=data)


def _header_utf8_bom(ctx: ForgeContext) -> Forged:
    return _raw_segments(ctx, header=b"\xef\xbb\xbf" + _json(_parts(ctx.token)[0]))


def _header_utf16(ctx: ForgeContext) -> Forged:
    return _raw_segments(ctx, header=json.dumps(_parts(ctx.token)[0]).encode("utf-16-le"))


def _header_invalid_utf8(ctx: ForgeContext) -> Forged:
    header, _, _ = _parts(ctx.token)
    return _raw_segments(ctx, header=_json(header)[:-1] + b',"x":"\xff\xfe"}')


def _payload_invalid_utf8(ctx: ForgeContext) -> Forged:
    _, claims, _ = _parts(ctx.token)
    return _raw_segments(ctx, payload=_json(claims)[:-1] + b',"x":"\xc0\xa2"}')


def _non_ascii(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    return _bearer(ctx, f"{head}.{payload}\u00e9.{signature}")


def _garbage(ctx: ForgeContext) -> Forged:
    return _bearer(ctx, binascii.hexlify(secrets.token_bytes(96)).decode())


# -- algorithm


def _alg(name: str, keep_signature: bool) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, signature = _parts(ctx.token)
        return _bearer(ctx, _compact({**header, "alg": name}, claims, signature * keep_signature))

    return forge


def _alg_switch(ctx: ForgeContext) -> Forged:
    header, claims, _ = _parts(ctx.token)
    alg = "HS512" if ctx.token_alg == "HS256" else "HS256"
    return _bearer(ctx, _sign(alg, _stranger_key(alg), {**header, "alg": alg}, claims))


def _alg_rsa(ctx: ForgeContext) -> Forged:
    header, claims, _ = _parts(ctx.token)
    alg = "PS256" if ctx.token_alg == "RS256" else "RS256"
    return _bearer(ctx, _sign(alg, _stranger_key(alg), {**header, "alg": alg}, claims))


def _public_key_forms(public: Any) -> dict[str, bytes]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk_alg = "ES384" if public.curve.name == "secp384r1" else "ES256"
    else:
        jwk_alg = "EdDSA" if isinstance(public, ed25519.Ed25519PublicKey) else "RS256"
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    return {
        "pem": public.public_bytes(serialization.Encoding.PEM, info),
        "der": public.public_bytes(serialization.Encoding.DER, info),
        "jwk": _PYJWT[jwk_alg].to_jwk(public).encode(),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }


def _hmac_with_public_key(form: str) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, _ = _parts(ctx.token)
        secret = _public_key_forms(ctx.public_key)[form]
        return _bearer(ctx, _hmac_token(secret, {**header, "alg": "HS256"}, claims))

    return forge


# -- signature


def _stripped(ctx: ForgeContext) -> Forged:
    head, payload, _ = ctx.token.split(".")
    return _bearer(ctx, f"{head}.{payload}.")


def _flippable(value: Any) -> bool:
    return isinstance(value, str) and value[-1:].isalnum()


def _flip_in_value(segment: int, name: str) -> Callable[[ForgeContext], Forged]:
    """One bit flipped in the last character of a header or payload member's string value
    (an ASCII letter stays printable): the JSON stays valid, only the signature can tell."""

    def forge(ctx: ForgeContext) -> Forged:
        parts = ctx.token.split(".")
        raw = bytearray(_unb64(parts[segment]))
        members = json.loads(raw)
        # Another string member where a target's tokens lack this one.
        value = next(v for k, v in [(name, members.get(name)), *members.items()] if _flippable(v))
        position = raw.index(_json(value)) + len(_json(value)) - 2
        raw[position] ^= 0x01
        parts[segment] = _b64(bytes(raw))
        return _bearer(ctx, ".".join(parts))

    return forge


def _flip_signature(index: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        raw = bytearray(_genuine_signature(ctx))
        raw[index if index >= 0 else len(raw) + index] ^= 0x01
        return _with_signature(ctx, bytes(raw))

    return forge


def _another_key(ctx: ForgeContext) -> Forged:
    header, claims, _ = _parts(ctx.token)
    return _bearer(ctx, _sign(ctx.token_alg, _stranger_key(ctx.token_alg), header, claims))


def _r_s(ctx: ForgeContext) -> tuple[int, int, int]:
    """The genuine signature read as ECDSA r || s (for other algorithms, its two halves)."""
    raw = _genuine_signature(ctx)
    half = len(raw) // 2
    return int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"), half


def _ecdsa(
    r_of: Callable[[int], int], s_of: Callable[[int], int]
) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        r, s, half = _r_s(ctx)
        width = max(half, 32)
        return _with_signature(ctx, r_of(r).to_bytes(width, "big") + s_of(s).to_bytes(width, "big"))

    return forge


def _ecdsa_der(ctx: ForgeContext) -> Forged:
    r, s, _ = _r_s(ctx)
    return _with_signature(ctx, encode_dss_signature(r, s))


def _eddsa_s_plus_l(ctx: ForgeContext) -> Forged:
    raw = _genuine_signature(ctx)
    half = len(raw) // 2
    width = max(half, 32)
    # For EdDSA S < L, so S + L fits; other algorithms' halves wrap (still a wrong signature).
    s = (int.from_bytes(raw[half:], "little") + ED25519_ORDER) % (1 << (8 * width))
    return _with_signature(ctx, raw[:half] + s.to_bytes(width, "little"))


# -- key headers


def _with_kid(kid: Any) -> Callable[[ForgeContext], Forged]:
    return lambda ctx: _with_header(ctx, kid=kid)


def _kid_hmac(kid: str, secret: bytes) -> Callable[[ForgeContext], Forged]:
    """The classic kid injection: a kid that makes a careless lookup return a known secret
    (an empty file, a row of our choosing), signed HS256 with that secret."""

    def forge(ctx: ForgeContext) -> Forged:
        header, claims, _ = _parts(ctx.token)
        return _bearer(ctx, _hmac_token(secret, {**header, "alg": "HS256", "kid": kid}, claims))

    return forge


def _attacker_header(ctx: ForgeContext, **extra: Any) -> Forged:
    """Re-signed with the attacker's key of the target's algorithm, naming it with ``extra``."""
    header, claims, _ = _parts(ctx.token)
    alg = ctx.token_alg
    header = {**header, "kid": _stranger_kid(alg), **extra}
    return _bearer(ctx, _sign(alg, _stranger_key(alg), header, claims))


def _listener(ctx: ForgeContext, path: str) -> str:
    return f"{(ctx.listener_url or 'http://127.0.0.1:9').rstrip('/')}{path}"


def _jku(ctx: ForgeContext) -> Forged:
    return _attacker_header(ctx, jku=_listener(ctx, "/jwks.json"))


def _jku_genuine(ctx: ForgeContext) -> Forged:
    return _with_header(ctx, jku=_listener(ctx, "/jwks.json"))


def _x5u(ctx: ForgeContext) -> Forged:
    return _attacker_header(ctx, x5u=_listener(ctx, "/cert.pem"))


def _embedded_jwk(ctx: ForgeContext) -> Forged:
    jwk = json.loads(_stranger_jwk_text(ctx.token_alg))
    return _attacker_header(ctx, jwk=jwk)


def _embedded_x5c(ctx: ForgeContext) -> Forged:
    der = stranger_certificate(ctx.token_alg).public_bytes(serialization.Encoding.DER)
    return _attacker_header(ctx, x5c=[base64.b64encode(der).decode()])


# -- size


def _exactly(length: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, signature = _parts(ctx.token)
        base = _compact(header, {**claims, "pad": ""}, signature)
        pad = "x" * max(0, (length - len(base) - 4) * 3 // 4)
        token = _compact(header, {**claims, "pad": pad}, signature)
        # Top up the signature segment so the token is exactly ``length`` characters.
        return _bearer(ctx, token + "A" * (length - len(token)))

    return forge


# -- claims


def _other_device(ctx: ForgeContext) -> Forged:
    return Forged(f"Bearer {ctx.token}", ctx.other_device_id)


def _revoked(ctx: ForgeContext) -> Forged:
    return Forged(f"Bearer {ctx.revoked_token}", ctx.revoked_device_id or ctx.device_id)


def _scoped(ctx: ForgeContext) -> Forged:
    return Forged(f"Bearer {ctx.scoped_token}", ctx.device_id, "telemetry")


MALFORMED = frozenset({"malformed"})
SIGNATURE = frozenset({"signature"})
# The signature checked first, or the broken JSON found first: both are right.
SIGNATURE_OR_MALFORMED = frozenset({"signature", "malformed"})
SIGNATURE_OR_CLAIMS = frozenset({"signature", "claims"})
MISSING = frozenset({"missing"})
FORBIDDEN = frozenset({"insufficient_scope"})


def _case(
    name: str,
    family: str,
    description: str,
    forge: Callable[[ForgeContext], Forged],
    reasons: frozenset[str],
    *needs: Need,
    status: int = 401,
) -> Case:
    return Case(name, family, description, forge, status, reasons, frozenset(needs))


def _format_cases() -> Iterator[Case]:
    f = "format"
    yield _case(
        "no_token", f, "no Authorization header", lambda c: Forged(None, c.device_id), MISSING
    )
    yield _case(
        "empty", f, "an empty Authorization header", lambda c: Forged("", c.device_id), MISSING
    )
    yield _case(
        "bearer_without_token",
        f,
        "the Bearer scheme and nothing after it",
        lambda c: Forged("Bearer", c.device_id),
        frozenset({"malformed", "missing"}),
    )
    yield _case(
        "wrong_scheme_basic",
        f,
        "the genuine token under the Basic scheme",
        lambda c: Forged(f"Basic {c.token}", c.device_id),
        MISSING,
    )
    yield _case(
        "wrong_scheme_token",
        f,
        "the genuine token under a made-up 'Token' scheme",
        lambda c: Forged(f"Token {c.token}", c.device_id),
        MISSING,
    )
    for count in (1, 2, 4, 5):
        yield _case(
            f"segments_{count}",
            f,
            f"{count} dot-separated segment{'s' * (count > 1)} instead of 3",
            _segments(count),
            MALFORMED,
        )
    yield _case("garbage", f, "random hex, not a JWS", _garbage, MALFORMED)
    yield _case("header_padded", f, "header base64url with '=' padding", _padded_header, MALFORMED)
    yield _case(
        "header_standard_base64",
        f,
        "header in the standard base64 alphabet ('+', '/')",
        _standard_alphabet,
        MALFORMED,
    )
    yield _case(
        "header_bad_character",
        f,
        "a '!' inside the header segment",
        lambda c: _bearer(c, "ey!" + c.token[3:]),
        MALFORMED,
    )
    yield _case(
        "signature_bad_character",
        f,
        "a '*' inside the signature segment",
        lambda c: _bearer(c, c.token[:-2] + "*" + c.token[-1:]),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "non_ascii",
        f,
        "a non-ASCII character inside the token",
        _non_ascii,
        SIGNATURE_OR_MALFORMED,
        "attack_only",  # how a load generator's HTTP client encodes it is its own business
    )
    for label, data in (("array", b'["ES256"]'), ("null", b"null"), ("string", b'"at+jwt"')):
        yield _case(
            f"header_{label}",
            f,
            f"header is a JSON {label}, not an object",
            _header_bytes(data),
            MALFORMED,
        )
    yield _case(
        "header_not_json", f, "header is not JSON at all", _header_bytes(b"alg=none"), MALFORMED
    )
    yield _case(
        "payload_array",
        f,
        "payload is a JSON array, under the original signature",
        lambda c: _raw_segments(c, payload=b"[]"),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "header_invalid_utf8",
        f,
        "header holds bytes that are not UTF-8",
        _header_invalid_utf8,
        MALFORMED,
    )
    yield _case("header_utf8_bom", f, "header starts with a UTF-8 BOM", _header_utf8_bom, MALFORMED)
    yield _case("header_utf16", f, "header encoded as UTF-16", _header_utf16, MALFORMED)
    yield _case(
        "payload_invalid_utf8",
        f,
        "payload holds an overlong UTF-8 sequence",
        _payload_invalid_utf8,
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "header_deeply_nested",
        f,
        "header member nested 2,000 arrays deep",
        _nested(2000),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "header_duplicate_alg",
        f,
        "header names alg twice, the second none",
        _duplicate_header("alg", "none"),
        MALFORMED,
    )
    yield _case(
        "header_duplicate_kid",
        f,
        "header names kid twice",
        _duplicate_header("kid", "attacker"),
        MALFORMED,
    )
    yield _case(
        "payload_duplicate_sub",
        f,
        "payload names sub twice, the second another device",
        _duplicate_claim,
        SIGNATURE_OR_MALFORMED,
    )


def _algorithm_cases() -> Iterator[Case]:
    f = "algorithm"
    yield _case(
        "alg_none",
        f,
        "header alg none, signature removed",
        _alg("none", False),
        SIGNATURE_OR_MALFORMED,
    )
    for spelling in ("None", "NONE", "nOnE"):
        yield _case(
            f"alg_{spelling}",
            f,
            f"header alg {spelling}, signature removed",
            _alg(spelling, False),
            SIGNATURE_OR_MALFORMED,
        )
    for spelling in ("none", "None", "NONE", "nOnE"):
        yield _case(
            f"alg_{spelling}_signed",
            f,
            f"header alg {spelling}, original signature kept",
            _alg(spelling, True),
            SIGNATURE,
        )
    yield _case(
        "alg_missing",
        f,
        "no alg in the header",
        lambda c: _without_header(c, "alg"),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case("alg_not_string", f, "alg is a list", _alg_list, SIGNATURE_OR_MALFORMED)
    yield _case(
        "alg_switch",
        f,
        "re-signed with an HMAC alg the target does not use",
        _alg_switch,
        SIGNATURE,
    )
    yield _case(
        "alg_rsa", f, "re-signed with an RSA alg the target does not use", _alg_rsa, SIGNATURE
    )
    yield _case(
        "alg_unknown",
        f,
        "alg ES256K, a name the target does not know",
        _alg("ES256K", True),
        SIGNATURE,
    )
    for form, label in (("pem", "PEM"), ("der", "DER"), ("jwk", "JWK"), ("openssh", "OpenSSH")):
        yield _case(
            f"hmac_public_key_{form}",
            f,
            f"HS256 signed with the target's public key ({label}) as the secret",
            _hmac_with_public_key(form),
            SIGNATURE,
            "public_key",
        )


def _alg_list(ctx: ForgeContext) -> Forged:
    return _with_header(ctx, alg=[ctx.token_alg])


def _signature_cases() -> Iterator[Case]:
    f = "signature"
    yield _case(
        "stripped_signature", f, "signature segment emptied", _stripped, SIGNATURE_OR_MALFORMED
    )
    yield _case(
        "flipped_header",
        f,
        "one bit flipped in the header (inside kid)",
        _flip_in_value(0, "kid"),
        SIGNATURE,
    )
    yield _case(
        "flipped_payload",
        f,
        "one bit flipped in the payload (inside jti)",
        _flip_in_value(1, "jti"),
        SIGNATURE,
    )
    yield _case(
        "tampered_signature", f, "one signature bit flipped", _flip_signature(10), SIGNATURE
    )
    yield _case(
        "flipped_signature_last", f, "last signature byte flipped", _flip_signature(-1), SIGNATURE
    )
    yield _case(
        "tampered_payload",
        f,
        "scope widened in the payload, original signature kept",
        lambda c: _with_claims(c, scope="telemetry:write config:read admin"),
        SIGNATURE,
    )
    yield _case(
        "truncated_signature",
        f,
        "signature cut to its first half",
        lambda c: _with_signature(c, _genuine_signature(c)[: len(_genuine_signature(c)) // 2]),
        SIGNATURE,
    )
    yield _case(
        "extended_signature",
        f,
        "a zero byte appended to the signature",
        lambda c: _with_signature(c, _genuine_signature(c) + b"\0"),
        SIGNATURE,
    )
    yield _case(
        "another_key",
        f,
        "same header and claims signed by a key the target never saw",
        _another_key,
        SIGNATURE,
    )
    yield _case(
        "ecdsa_zero", f, "ES256 signature r = s = 0", _ecdsa(lambda r: 0, lambda s: 0), SIGNATURE
    )
    yield _case(
        "ecdsa_r_order",
        f,
        "ES256 signature with r = n (the group order)",
        _ecdsa(lambda r: P256_ORDER, lambda s: s),
        SIGNATURE,
    )
    yield _case(
        "ecdsa_s_order",
        f,
        "ES256 signature with s = n (the group order)",
        _ecdsa(lambda r: r, lambda s: P256_ORDER),
        SIGNATURE,
    )
    yield _case(
        "ecdsa_der",
        f,
        "the signature's r and s DER-encoded instead of raw r || s",
        _ecdsa_der,
        SIGNATURE,
    )
    yield _case(
        "eddsa_s_plus_order",
        f,
        "EdDSA signature with S + L (malleated)",
        _eddsa_s_plus_l,
        SIGNATURE,
    )


def _key_header_cases() -> Iterator[Case]:
    f = "key_header"
    yield _case(
        "unknown_kid",
        f,
        "kid the target never issued",
        lambda c: _with_header(c, kid="unknown-" + secrets.token_hex(4)),
        SIGNATURE,
    )
    yield _case(
        "kid_missing", f, "no kid in the header", lambda c: _without_header(c, "kid"), SIGNATURE
    )
    for label, value in (("int", 1), ("null", None), ("list", ["k1"]), ("object", {"k": 1})):
        yield _case(f"kid_{label}", f, f"kid is a JSON {label}", _with_kid(value), SIGNATURE)
    yield _case(
        "kid_path_traversal",
        f,
        "kid ../../../../dev/null, HS256 signed with the empty secret",
        _kid_hmac("../../../../../../dev/null", b""),
        SIGNATURE,
    )
    yield _case(
        "kid_sql",
        f,
        "kid with SQL selecting a known secret, HS256 signed with it",
        _kid_hmac("x' UNION SELECT 'attacker' -- ", b"attacker"),
        SIGNATURE,
    )
    yield _case("kid_long", f, "a 4,000-character kid", _with_kid("k" * 4000), SIGNATURE)
    yield _case(
        "jku",
        f,
        "jku naming a loopback JWKS of the attacker's key, signed with it",
        _jku,
        SIGNATURE,
        "listener",
    )
    yield _case(
        "jku_genuine_signature",
        f,
        "jku added to the genuine header, original signature kept",
        _jku_genuine,
        SIGNATURE,
        "listener",
    )
    yield _case(
        "x5u",
        f,
        "x5u naming a loopback certificate of the attacker's key, signed with it",
        _x5u,
        SIGNATURE,
        "listener",
    )
    yield _case(
        "embedded_jwk", f, "the attacker's public key embedded as jwk", _embedded_jwk, SIGNATURE
    )
    yield _case(
        "embedded_x5c",
        f,
        "the attacker's self-signed certificate embedded as x5c",
        _embedded_x5c,
        SIGNATURE,
    )
    yield _case(
        "crit_exp",
        f,
        "crit naming exp as an extension to understand",
        lambda c: _with_header(c, crit=["exp"]),
        SIGNATURE,
    )
    yield _case(
        "crit_b64",
        f,
        "crit b64 with b64 false (RFC 7797 unencoded payload)",
        lambda c: _with_header(c, crit=["b64"], b64=False),
        SIGNATURE,
    )


def _now() -> int:
    return int(time.time())


def _claims_cases() -> Iterator[Case]:
    f = "claims"
    yield _case(
        "expired",
        f,
        "exp an hour in the past (cannot re-sign: the signature breaks too)",
        lambda c: _with_claims(c, exp=_now() - 3600),
        frozenset({"signature", "expired"}),
    )
    yield _case(
        "nbf_future",
        f,
        "nbf an hour ahead, beyond any leeway",
        lambda c: _with_claims(c, nbf=_now() + 3600),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "iat_future",
        f,
        "iat an hour ahead, beyond any leeway",
        lambda c: _with_claims(c, iat=_now() + 3600),
        SIGNATURE_OR_CLAIMS,
    )
    for name in ("exp", "iat", "iss", "aud", "sub"):
        yield _case(
            f"missing_{name}", f, f"claim {name} removed", _without_claim(name), SIGNATURE_OR_CLAIMS
        )
    yield _case(
        "wrong_audience",
        f,
        "aud of another API",
        lambda c: _with_claims(c, aud="urn:example:other-api"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "wrong_issuer",
        f,
        "iss of another issuer",
        lambda c: _with_claims(c, iss="https://evil.example"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "sub_other_device",
        f,
        "sub of another device, original signature kept",
        lambda c: _with_claims(c, sub=c.other_device_id),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "typ_jwt",
        f,
        "typ changed from at+jwt to JWT",
        lambda c: _with_header(c, typ="JWT"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "typ_missing",
        f,
        "no typ in the header",
        lambda c: _without_header(c, "typ"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "typ_refresh",
        f,
        "a refresh-like token type (typ rt+jwt)",
        lambda c: _with_header(c, typ="rt+jwt"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "token_use_refresh",
        f,
        "a refresh-like token_use claim, original signature kept",
        lambda c: _with_claims(c, token_use="refresh"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "other_device",
        f,
        "a genuine token on another device's path",
        _other_device,
        FORBIDDEN,
        "device_path",
        status=403,
    )
    yield _case(
        "scope_missing",
        f,
        "a genuine config:read token sending telemetry",
        _scoped,
        FORBIDDEN,
        "device_path",
        "scoped_token",
        status=403,
    )
    yield _case(
        "revoked_device",
        f,
        "a genuine token of a device revoked since",
        _revoked,
        frozenset({"revoked"}),
        "device_path",
        "revoked_token",
    )


def _size_cases() -> Iterator[Case]:
    yield _case("oversized", "size", "token of 8,193 characters", _exactly(8193), MALFORMED)
    yield _case(
        "oversized_1mib",
        "size",
        "token of 1 MiB",
        _exactly(1 << 20),
        MALFORMED,
        "attack_only",
    )


CASES: tuple[Case, ...] = (
    *_format_cases(),
    *_algorithm_cases(),
    *_signature_cases(),
    *_key_header_cases(),
    *_claims_cases(),
    *_size_cases(),
)
assert len({case.name for case in CASES}) == len(CASES)


def cases_for(device_path: bool) -> tuple[Case, ...]:
    """The cases the rejection scenario can send from a held token: on an endpoint with (or
    without) a device id in its path, needing nothing else."""
    usable: frozenset[Need] = frozenset({"device_path"}) if device_path else frozenset()
    return tuple(case for case in CASES if case.needs <= usable)


# -- token endpoint cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenContext:
    """What a forger at the token endpoint knows: its own devices' credentials (``device`` and
    ``other``, both with key pairs), a revoked one, the issuer, and a genuine access token."""

    issuer: str
    device: Device
    other: Device
    revoked: Device
    access_token: str


@dataclass(frozen=True)
class TokenForged:
    """A token request: the form, HTTP Basic credentials if any, and whether it is sent twice
    (a replay: the first answer must be 200, the second is judged)."""

    form: dict[str, str]
    basic: tuple[str, str] | None = field(default=None, repr=False)
    replay: bool = False


@dataclass(frozen=True)
class TokenCase:
    name: str
    description: str
    forge: Callable[[TokenContext], TokenForged]
    expected_status: int
    expected_errors: frozenset[str]
    family: str = "token_endpoint"


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
    token = _sign(alg, signer.private_key(), {"alg": alg, "typ": "JWT", **(header or {})}, claims)
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _assertion_none(ctx: TokenContext) -> TokenForged:
    claims = _assertion_claims(ctx, ctx.device)
    token = _compact({"alg": "none", "typ": "JWT"}, claims, "")
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _assertion_hmac_public(ctx: TokenContext) -> TokenForged:
    public = ctx.device.private_key().public_key()
    secret = _public_key_forms(public)["pem"]
    token = _hmac_token(secret, {"alg": "HS256", "typ": "JWT"}, _assertion_claims(ctx, ctx.device))
    return TokenForged({"grant_type": JWT_BEARER, "assertion": token})


def _assertion_embedded_jwk(ctx: TokenContext) -> TokenForged:
    alg = ctx.device.alg or "ES256"
    jwk = json.loads(_stranger_jwk_text(alg))
    claims = _assertion_claims(ctx, ctx.device)
    token = _sign(alg, _stranger_key(alg), {"alg": alg, "typ": "JWT", "jwk": jwk}, claims)
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


# -- secret strength ------------------------------------------------------------------------------


@cache
def common_secrets() -> tuple[bytes, ...]:
    """Secrets people sign HS256 tokens with (``sim/common_secrets.txt``), plus the empty one."""
    text = resources.files("sim").joinpath("common_secrets.txt").read_text(encoding="utf-8")
    lines = (line.rstrip("\n") for line in text.splitlines())
    return (b"", *(line.encode() for line in lines if line and not line.startswith("#")))


_HMAC_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


def find_common_secret(token: str) -> int | None:
    """Which common secret (its index in :func:`common_secrets`) signs this HMAC token, if any;
    None for a strong secret or a token of another algorithm. Offline: no request is sent."""
    head, payload, signature = token.split(".")
    digest = _HMAC_DIGESTS.get(_parts(token)[0].get("alg", ""))
    if digest is None:
        return None
    signing_input = f"{head}.{payload}".encode()
    expected = _unb64(signature)
    for index, secret in enumerate(common_secrets()):
        if hmac.compare_digest(hmac.digest(secret, signing_input, digest), expected):
            return index
    return None
