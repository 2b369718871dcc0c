"""Signing keys: the current one signs, recently retired ones keep verifying for a grace period.

Private key material lives in the database (``signing_keys.private``: PKCS#8 PEM, or the raw HMAC
secret), and the database file is created 0600. Keys are parsed once, at start or on a change.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from target.errors import KeyPinnedError
from target.jose.algorithms import ALGORITHMS, SigningKey
from target.store.db import bump_revision, transaction

__all__ = ["KeyStore", "load_signing_key_file"]


def load_signing_key_file(path: Path, alg: str) -> SigningKey:
    """A key from ``--signing-key``: PEM for asymmetric algorithms, >= 32 secret bytes for HS*."""
    spec = ALGORITHMS[alg]
    private = spec.load_private(path.read_bytes())
    if spec.symmetric:
        # One file, one kid in every worker; a hash of 32+ random bytes reveals nothing.
        digest = hashlib.sha256(b"fleetbench kid\0" + private).digest()[:12]
        return spec.make_key(private, kid=base64.urlsafe_b64encode(digest).decode())
    return spec.make_key(private)


class KeyStore:
    def __init__(
        self,
        conn: sqlite3.Connection,
        alg: str,
        grace_s: float,
        pinned: SigningKey | None = None,
        reader: sqlite3.Connection | None = None,
    ) -> None:
        # ``conn`` is the writer; ``reader`` serves reloads on the event loop, which must not wait
        # for the write lock another process may hold.
        self._conn = conn
        self._reader = conn if reader is None else reader
        self.alg = alg
        self.grace_s = grace_s
        self._pinned = pinned
        self._spec = ALGORITHMS[alg]
        self._retired: list[tuple[SigningKey, float]] = []
        self.current: SigningKey = pinned or self._load_or_create()

    def _load_or_create(self) -> SigningKey:
        conn = self._conn
        with transaction(conn):  # two workers starting together must agree on one key
            current = self._read_ring(conn)
            if current is None:
                current = self._spec.make_key(self._spec.generate())
                conn.execute(
                    "INSERT INTO signing_keys (kid, alg, private, created_at) VALUES (?, ?, ?, ?)",
                    (current.kid, self.alg, self._spec.private_bytes(current.private), time.time()),
                )
        return current

    def _read_ring(self, conn: sqlite3.Connection) -> SigningKey | None:
        """Load the retired keys still in grace; return the current key, if there is one."""
        rows = conn.execute(
            "SELECT kid, private, retired_at FROM signing_keys WHERE alg = ?"
            " ORDER BY created_at DESC",
            (self.alg,),
        ).fetchall()
        cutoff = time.time() - self.grace_s
        self._retired = [
            (self._spec.make_key(self._spec.load_private(private), kid=kid), retired_at)
            for kid, private, retired_at in rows
            if retired_at is not None and retired_at > cutoff
        ]
        current_rows = [r for r in rows if r[2] is None]
        if not current_rows:
            return None
        kid, private, _ = current_rows[0]
        return self._spec.make_key(self._spec.load_private(private), kid=kid)

    def reload(self) -> None:
        """Pick up a rotation made by another worker (a read: it never waits for a lock)."""
        if self._pinned is None:
            current = self._read_ring(self._reader)
            if current is not None:
                self.current = current

    def verification_keys(self, now: float) -> dict[str, SigningKey]:
        """The keys a token may be signed with right now, by kid."""
        keys = {
            key.kid: key for key, retired_at in self._retired if retired_at + self.grace_s > now
        }
        keys[self.current.kid] = self.current
        return keys

    def rotate(self) -> tuple[SigningKey, SigningKey]:
        """Make a new current key; the old one verifies for ``grace_s`` more seconds."""
        if self._pinned is not None:
            raise KeyPinnedError
        new = self._spec.make_key(self._spec.generate())
        now = time.time()
        with transaction(self._conn):  # retire, insert and bump as one change
            self._conn.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE alg = ? AND retired_at IS NULL",
                (now, self.alg),
            )
            self._conn.execute(
                "INSERT INTO signing_keys (kid, alg, private, created_at) VALUES (?, ?, ?, ?)",
                (new.kid, self.alg, self._spec.private_bytes(new.private), now),
            )
            bump_revision(self._conn, "keys")
        old = self.current
        self._retired.append((old, now))
        self.current = new
        return new, old

    def jwks(self) -> dict[str, Any]:
        """Public keys for ``/.well-known/jwks.json``; empty for HMAC (a secret is never served)."""
        if self._spec.symmetric:
            return {"keys": []}
        keys = []
        for key in self.verification_keys(time.time()).values():
            jwk = self._spec.public_jwk(key.public)
            jwk.update(kid=key.kid, alg=key.alg, use="sig")
            keys.append(jwk)
        return {"keys": keys}
