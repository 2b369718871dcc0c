"""The signature layer: compact JWS parsing and signature checks, with no claim semantics.

Kept apart from claims as PyJWS is kept apart from PyJWT. Parsing is strict where PyJWT is lenient:
only the base64url alphabet, no padding, canonical encodings, objects without duplicate keys.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from target.errors import MalformedTokenError, SignatureError
from target.jose.algorithms import SigningKey
from target.jsontext import has_lone_surrogate

__all__ = [
    "MAX_TOKEN_BYTES",
    "b64url_decode",
    "decode_json_object",
    "prepare_signature",
    "split_compact",
    "verify_signature",
]

# RFC 8725 §3.11 suggests bounding what we parse; our own tokens are well under 1 KiB.
MAX_TOKEN_BYTES = 8192

_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = {0: b"", 2: b"==", 3: b"="}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SEXTET = {c: i for i, c in enumerate(_ALPHABET)}
# Bits of the last character that encode nothing; a canonical encoding has them all zero.
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def split_compact(token: str) -> tuple[str, str, str]:
    """Split a compact JWS into its three segments, refusing anything else."""
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedTokenError("token longer than 8 KiB")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedTokenError("not three dot-separated segments")
    header, payload, signature = parts
    if not header or not payload:
        raise MalformedTokenError("empty header or payload")
    if not signature:
        raise SignatureError("signature missing")
    return header, payload, signature


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url strictly: its own alphabet only, no padding, no stray bits."""
    remainder = len(segment) % 4
    if remainder == 1:
        raise MalformedTokenError("not base64url")
    try:
        # One pass maps base64url onto base64 and base64's own "+", "/" and "=" onto characters
        # strict mode refuses, so the alphabet is checked by a2b_base64 itself.
        data = binascii.a2b_base64(
            segment.encode("ascii").translate(_TO_STANDARD_ALPHABET) + _PADDING[remainder],
            strict_mode=True,
        )
    except (binascii.Error, UnicodeEncodeError) as e:
        raise MalformedTokenError("not base64url") from e
    if remainder and _SEXTET[segment[-1]] & _UNUSED_BITS[remainder]:
        raise MalformedTokenError("non-canonical base64url")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MalformedTokenError("duplicate member name")
    return obj


# One decoder, made once: json.loads with a hook would build a new one on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)


def decode_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object as UTF-8, refusing duplicate member names and any other JSON value."""
    try:
        text = data.decode("utf-8")
        obj = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError; RecursionError a deeply nested document.
        raise MalformedTokenError(f"{what} is not JSON") from e
    if not isinstance(obj, dict):
        raise MalformedTokenError(f"{what} is not a JSON object")
    if has_lone_surrogate(text, obj):
        raise MalformedTokenError(f"{what} holds a lone surrogate escape")
    return obj


def prepare_signature(signature_segment: str, key: SigningKey) -> bytes:
    """The signature segment in the form ``key`` checks (DER for ECDSA), or a SignatureError when
    it cannot be one of its signatures. Parsing only: nothing is verified yet."""
    try:
        signature = b64url_decode(signature_segment)
    except MalformedTokenError as e:
        raise SignatureError("signature is not base64url") from e
    prepared = key.scheme.prepare(signature)
    if prepared is None:
        raise SignatureError("signature does not verify")
    return prepared


def verify_signature(signing_input: bytes, signature_segment: str, key: SigningKey) -> None:
    """Check the signature over ``header.payload`` with ``key`` under the key's own algorithm."""
    if not key.scheme.check(signing_input, prepare_signature(signature_segment, key)):
        raise SignatureError("signature does not verify")
