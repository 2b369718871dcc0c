"""The signature layer: compact JWS parsing and signature checks, with no claim semantics.

Kept apart from claims as PyJWS is kept apart from PyJWT. Parsing is strict where PyJWT is lenient:
only the base64url alphabet, no padding, canonical encodings, objects without duplicate keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from target.algorithms import SigningKey
from target.errors import MalformedTokenError, SignatureError

__all__ = [
    "MAX_TOKEN_BYTES",
    "b64url_decode",
    "decode_json_object",
    "split_compact",
    "verify_signature",
]

# RFC 8725 §3.11 suggests bounding what we parse; our own tokens are well under 1 KiB.
MAX_TOKEN_BYTES = 8192

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def split_compact(token: str) -> tuple[str, str, str]:
    """Split a compact JWS into its three base64url segments, refusing anything else."""
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
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise MalformedTokenError("not base64url")
    return header, payload, signature


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url, refusing non-canonical encodings (stray trailing bits)."""
    if len(segment) % 4 == 1:
        raise MalformedTokenError("not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as e:
        raise MalformedTokenError("not base64url") from e
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        raise MalformedTokenError("non-canonical base64url")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MalformedTokenError("duplicate member name")
    return obj


def decode_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object as UTF-8, refusing duplicate member names and any other JSON value."""
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError; RecursionError a deeply nested document.
        raise MalformedTokenError(f"{what} is not JSON") from e
    if not isinstance(obj, dict):
        raise MalformedTokenError(f"{what} is not a JSON object")
    return obj


def verify_signature(signing_input: bytes, signature_segment: str, key: SigningKey) -> None:
    """Check the signature over ``header.payload`` with ``key`` under the key's own algorithm."""
    try:
        signature = b64url_decode(signature_segment)
    except MalformedTokenError as e:
        raise SignatureError("signature is not base64url") from e
    if not key.algorithm.verify(signing_input, key.public, signature):
        raise SignatureError("signature does not verify")
