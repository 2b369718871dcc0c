"""The cluster key, and what it proves and seals between a ``fleetbench run --master`` and its
``fleetbench worker`` processes.

A worker proves it holds the key by answering the master's fresh random challenge with an HMAC
(the key never travels); everything of value then travels sealed with ChaCha20-Poly1305: the
shards (device secrets and keys, the run's settings) one way, each worker's account (what decides
the verdict) the other. Every sealed message has a fresh random nonce and is bound, as associated
data, to its message type, to the worker's id and to the master's challenge for that worker: a
sealed message cannot be moved to another worker, another type or another run.
Both halves of the key are derived from it with HKDF, so the proof and the seal never share one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sim.errors import ConfigError, SimError

__all__ = [
    "CHALLENGE_BYTES",
    "KEY_ENV",
    "ClusterKey",
    "Unsealed",
    "new_key_text",
]

KEY_ENV = "FLEETBENCH_CLUSTER_KEY"
KEY_BYTES = 32
CHALLENGE_BYTES = 32
NONCE_BYTES = 12  # ChaCha20-Poly1305's; random per message (2^-32 collision odds at 2^32 seals)
_CONTEXT = b"fleetbench cluster v1"


class Unsealed(SimError):
    """A sealed message that does not open under this key, for this worker and type."""


def new_key_text() -> str:
    """A fresh cluster key, as the operator passes it on: 43 characters of URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).rstrip(b"=").decode()


def _key_bytes(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        # The value is a secret: the message says what is wrong with it, never what it is.
        raise ConfigError(
            f"{KEY_ENV} is not a cluster key: use the 43 characters the master printed "
            "(or any 32 random bytes in URL-safe base64)"
        )
    return raw


def _derived(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CONTEXT + purpose).derive(
        key
    )


class ClusterKey:
    """The key both sides hold; its ``repr`` never shows it."""

    def __init__(self, text: str) -> None:
        key = _key_bytes(text)
        self._proof_key = _derived(key, b" proof")
        self._aead = ChaCha20Poly1305(_derived(key, b" seal"))

    def __repr__(self) -> str:
        return "ClusterKey(...)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ClusterKey | None:
        text = environ.get(KEY_ENV, "")
        return cls(text) if text.strip() else None

    def proof(self, challenge: bytes, worker_id: str) -> bytes:
        """The answer to the master's challenge: an HMAC of it and the worker's id."""
        message = _CONTEXT + b" join\0" + challenge + b"\0" + worker_id.encode()
        return hmac.new(self._proof_key, message, hashlib.sha256).digest()

    def proves(self, challenge: bytes, worker_id: str, proof: object) -> bool:
        return isinstance(proof, bytes) and hmac.compare_digest(
            self.proof(challenge, worker_id), proof
        )

    def seal(self, kind: str, worker_id: str, challenge: bytes, payload: Any) -> bytes:
        """``payload`` (msgpack-able) encrypted and authenticated: nonce, then ciphertext."""
        nonce = os.urandom(NONCE_BYTES)
        plain = msgspec.msgpack.encode(payload)
        return nonce + self._aead.encrypt(nonce, plain, _bound(kind, worker_id, challenge))

    def open(self, kind: str, worker_id: str, challenge: bytes, sealed: object) -> Any:
        """What :meth:`seal` sealed for this type, worker and challenge; else :class:`Unsealed`."""
        if not isinstance(sealed, bytes) or len(sealed) <= NONCE_BYTES:
            raise Unsealed(f"a {kind} message that is not sealed")
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, ciphertext, _bound(kind, worker_id, challenge))
        except InvalidTag:
            raise Unsealed(f"a {kind} message that failed authentication") from None
        return msgspec.msgpack.decode(plain)


def _bound(kind: str, worker_id: str, challenge: bytes) -> bytes:
    """The associated data: what a sealed message is for, authenticated with it."""
    return b"\0".join((_CONTEXT, kind.encode(), worker_id.encode(), challenge))
