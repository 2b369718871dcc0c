"""The signature layer (``target.jose.jws``): compact splitting, strict base64url, JSON objects, and
signature checks bound to the key's own algorithm."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from target.errors import MalformedTokenError, SignatureError
from target.jose.algorithms import ALGORITHMS, SigningKey
from target.jose.jws import (
    MAX_TOKEN_BYTES,
    b64url_decode,
    decode_json_object,
    split_compact,
    verify_signature,
)
from tests.target.helpers import ALGS, b64url, sign

# ---- split_compact ------------------------------------------------------------------------------


def test_split_compact_returns_the_three_segments() -> None:
    assert split_compact("aGVhZA.cGF5bG9hZA.c2ln") == ("aGVhZA", "cGF5bG9hZA", "c2ln")


def test_a_token_of_exactly_8_KiB_is_parsed_and_one_byte_more_is_not() -> None:
    head = "a" * (MAX_TOKEN_BYTES - 6)
    assert split_compact(f"{head}.bb.cc") == (head, "bb", "cc")
    with pytest.raises(MalformedTokenError, match="8 KiB"):
        split_compact(f"{head}a.bb.cc")


@pytest.mark.parametrize("token", ["", "a", "a.b", "a.b.c.d", "a..b..c", "....", "a.b.c."])
def test_anything_but_three_segments_is_malformed(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        split_compact(token)


@pytest.mark.parametrize("token", [".b.c", "a..c", "..c"])
def test_an_empty_header_or_payload_is_malformed(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        split_compact(token)


def test_an_empty_signature_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        split_compact("a.b.")


# ---- b64url_decode ------------------------------------------------------------------------------


def test_b64url_round_trips_every_length() -> None:
    rng = random.Random(7)
    for size in range(0, 70):
        data = rng.randbytes(size)
        assert b64url_decode(b64url(data)) == data


def test_b64url_uses_the_url_safe_alphabet() -> None:
    data = bytes([0xFB, 0xFF, 0xBF])  # "+/+/" in standard base64, "-_-_" in base64url
    assert base64.b64encode(data) == b"+/+/"
    assert b64url_decode("-_-_") == data


@pytest.mark.parametrize(
    "segment",
    [
        "+/+/",  # the standard alphabet
        "QQ==",  # padding
        "QQ=",
        "QUI=",
        "Q",  # a length no encoding has
        "QUJDR",
        "QU JD",  # whitespace
        "QUJD\n",
        "QUJ*",
        "QUJ.",
        "Q\u00e9JD",  # not ASCII
        "\uff31\uff31",  # full-width letters
    ],
)
def test_b64url_refuses_anything_outside_unpadded_base64url(segment: str) -> None:
    with pytest.raises(MalformedTokenError):
        b64url_decode(segment)


@pytest.mark.parametrize(("canonical", "stray"), [("QQ", "QR"), ("QUI", "QUJ"), ("AA", "AB")])
def test_b64url_refuses_non_canonical_trailing_bits(canonical: str, stray: str) -> None:
    """Two encodings of one byte string would let a tampered token share a signature."""
    assert b64url_decode(canonical)
    with pytest.raises(MalformedTokenError, match="non-canonical"):
        b64url_decode(stray)


# ---- decode_json_object -------------------------------------------------------------------------


def test_decode_json_object_parses_an_object() -> None:
    assert decode_json_object(b'{"alg":"ES256","n":[1,{"a":null}]}', "header") == {
        "alg": "ES256",
        "n": [1, {"a": None}],
    }


NOT_JSON_OBJECTS: list[tuple[str, bytes]] = [
    ("duplicate", b'{"alg":"none","alg":"ES256"}'),
    ("nested-duplicate", b'{"a":{"b":1,"b":2}}'),
    ("array", b"[]"),
    ("string", b'"a string"'),
    ("number", b"1"),
    ("null", b"null"),
    ("empty", b""),
    ("truncated", b"{"),
    ("trailing", b'{"a":1}x'),
    ("not-utf8", b'{"\xff":1}'),
    ("byte-order-mark", b"\xef\xbb\xbf{}"),  # not JSON text in a JWS
    ("deep", b"[" * 50_000 + b"]" * 50_000),
]


@pytest.mark.parametrize(
    "data", [v for _, v in NOT_JSON_OBJECTS], ids=[i for i, _ in NOT_JSON_OBJECTS]
)
def test_decode_json_object_refuses_everything_else(data: bytes) -> None:
    with pytest.raises(MalformedTokenError):
        decode_json_object(data, "payload")


def test_decode_json_object_names_the_part_not_the_content() -> None:
    with pytest.raises(MalformedTokenError) as caught:
        decode_json_object(b'{"secret-looking-content', "header")
    assert caught.value.description == "malformed: header is not JSON"


# ---- verify_signature ---------------------------------------------------------------------------

_KEYS: dict[str, SigningKey] = {}


def _key(alg: str) -> SigningKey:
    """A signing key per algorithm, made through the registry as the target makes them."""
    if alg not in _KEYS:
        spec = ALGORITHMS[alg]
        _KEYS[alg] = spec.make_key(spec.generate())
    return _KEYS[alg]


def _signed(alg: str, signing_input: bytes = b"aGVhZA.cGF5bG9hZA") -> tuple[bytes, str]:
    key = _key(alg)
    return signing_input, b64url(sign(alg, key.private, signing_input))


@pytest.mark.parametrize("alg", [*ALGS, "HS384"])
def test_a_good_signature_verifies(alg: str) -> None:
    signing_input, signature = _signed(alg)
    verify_signature(signing_input, signature, _key(alg))


@pytest.mark.parametrize("alg", [*ALGS, "HS384"])
def test_a_changed_input_or_signature_does_not_verify(alg: str) -> None:
    signing_input, signature = _signed(alg)
    with pytest.raises(SignatureError):
        verify_signature(signing_input + b"x", signature, _key(alg))
    raw = bytearray(b64url_decode(signature))
    raw[0] ^= 0x80
    with pytest.raises(SignatureError):
        verify_signature(signing_input, b64url(bytes(raw)), _key(alg))


@pytest.mark.parametrize("alg", [*ALGS, "HS384"])
def test_a_truncated_or_extended_signature_does_not_verify(alg: str) -> None:
    signing_input, signature = _signed(alg)
    raw = b64url_decode(signature)
    for changed in (raw[:-1], raw[: len(raw) // 2], raw + b"\x00", b"\x00" + raw, b""):
        if changed:
            with pytest.raises(SignatureError):
                verify_signature(signing_input, b64url(changed), _key(alg))


@pytest.mark.parametrize("alg", ALGS)
def test_a_signature_by_another_key_of_the_same_algorithm_does_not_verify(alg: str) -> None:
    spec = ALGORITHMS[alg]
    other = spec.make_key(spec.generate())
    signing_input = b"aGVhZA.cGF5bG9hZA"
    signature = b64url(sign(alg, other.private, signing_input))
    with pytest.raises(SignatureError):
        verify_signature(signing_input, signature, _key(alg))


@pytest.mark.parametrize(
    ("signed_as", "key_alg"),
    [("HS512", "HS256"), ("HS256", "HS512"), ("PS256", "RS256"), ("RS256", "PS256")],
)
def test_a_signature_under_another_algorithm_with_the_same_key_does_not_verify(
    signed_as: str, key_alg: str
) -> None:
    """The key's own algorithm decides how to check, never the token's header."""
    key = _key(key_alg)
    signing_input = b"aGVhZA.cGF5bG9hZA"
    signature = b64url(sign(signed_as, key.private, signing_input))
    with pytest.raises(SignatureError):
        verify_signature(signing_input, signature, key)


def test_an_es256_signature_in_der_form_does_not_verify() -> None:
    """JWS carries r||s (RFC 7518 §3.4); a DER signature of the same (r, s) is refused."""
    signing_input, signature = _signed("ES256")
    raw = b64url_decode(signature)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    with pytest.raises(SignatureError):
        verify_signature(signing_input, b64url(encode_dss_signature(r, s)), _key("ES256"))


@pytest.mark.parametrize("signature", ["QQ==", "+/+/", "a b", "QR", "\u00e9"])
def test_a_signature_that_is_not_base64url_is_a_signature_error(signature: str) -> None:
    with pytest.raises(SignatureError, match="base64url"):
        verify_signature(b"a.b", signature, _key("HS256"))


def test_a_verify_only_key_verifies_and_has_no_private_half() -> None:
    spec = ALGORITHMS["EdDSA"]
    full = _key("EdDSA")
    public_only = spec.verify_only_key(full.public, "device-1")
    assert public_only.private is None
    signing_input, signature = _signed("EdDSA")
    verify_signature(signing_input, signature, public_only)


def test_a_signing_key_repr_shows_no_key_material() -> None:
    key = _key("HS256")
    text = repr(key)
    assert key.kid in text
    assert key.private.hex() not in text
    assert b64url(key.private) not in text


def test_signatures_of_json_tokens_made_by_pyjwt_verify() -> None:
    """A token from PyJWT's own encoder verifies here: we speak the same JWS."""
    key = _key("ES256")
    token = jwt.encode({"sub": "d"}, key.private, algorithm="ES256", headers={"kid": key.kid})
    header, payload, signature = split_compact(token)
    verify_signature(f"{header}.{payload}".encode(), signature, key)
    claims: dict[str, Any] = decode_json_object(b64url_decode(payload), "payload")
    assert claims == {"sub": "d"}
    assert json.loads(b64url_decode(header))["alg"] == "ES256"


@pytest.mark.parametrize(
    ("alg", "size", "hash_alg"), [("ES256", 32, hashes.SHA256), ("ES384", 48, hashes.SHA384)]
)
def test_ecdsa_signatures_with_short_or_high_bit_halves_verify(
    alg: str, size: int, hash_alg: type[hashes.HashAlgorithm]
) -> None:
    """r || s is turned into DER by hand on the hot path: halves with leading zero bytes (a
    shorter INTEGER) or with the top bit set (a zero byte in front) must come out as the same
    DER as cryptography's own encoder makes, or a valid signature would be refused."""
    key = _key(alg)
    rng = random.Random(10)
    shapes = {"short r": False, "short s": False, "high r": False, "high s": False}
    for attempt in range(3000):
        message = b"header.payload-%d" % attempt
        der = key.private.sign(message, ec.ECDSA(hash_alg()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        found = {
            "short r": raw[0] == 0,
            "short s": raw[size] == 0,
            "high r": raw[0] >= 0x80,
            "high s": raw[size] >= 0x80,
        }
        if not any(found[k] and not shapes[k] for k in found) and rng.random() > 0.01:
            continue
        verify_signature(message, b64url(raw), key)  # raises if refused
        shapes.update({k: True for k, v in found.items() if v})
        if all(shapes.values()):
            break
    assert all(shapes.values()), shapes
