"""The device registry: who may get tokens, with which credential, and who is still active."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from target.algorithms import ALGORITHMS, ASSERTION_ALGORITHMS, SigningKey
from target.db import DatabaseUnavailable, bump_revision, transaction
from target.errors import RequestError

__all__ = ["DEFAULT_SCOPE", "DeviceRegistry", "NewDevice", "parse_devices"]

DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Device secrets are machine-made; a floor on length keeps a fast hash (SHA-256) safe to use.
MIN_SECRET_CHARS = 24
MAX_SECRET_CHARS = 512
MAX_DEVICES_PER_REQUEST = 10_000
KNOWN_SCOPES = frozenset({"telemetry:write", "config:read"})
DEFAULT_SCOPE = "telemetry:write config:read"
_DEVICE_KEY_CACHE = 50_000


@dataclass(frozen=True)
class NewDevice:
    id: str
    secret: str | None
    public_jwk: dict[str, Any] | None
    alg: str | None
    scope: str

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"NewDevice(id={self.id!r}, alg={self.alg!r}, scope={self.scope!r})"


def _invalid(index: int, description: str) -> RequestError:
    return RequestError(422, "invalid_device", f"devices[{index}]: {description}", index=index)


def _parse_one(index: int, entry: Any) -> NewDevice:
    if not isinstance(entry, dict):
        raise _invalid(index, "must be an object")
    unknown = set(entry) - {"id", "secret", "public_key", "alg", "scope"}
    if unknown:
        raise _invalid(index, f"unknown member {sorted(unknown)[0][:40]!r}")
    device_id = entry.get("id")
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise _invalid(index, "id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    secret = entry.get("secret")
    if secret is not None and (
        not isinstance(secret, str) or not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS
    ):
        raise _invalid(
            index, f"secret must be a string of {MIN_SECRET_CHARS}-{MAX_SECRET_CHARS} characters"
        )
    public_jwk = entry.get("public_key")
    alg = entry.get("alg")
    if public_jwk is None:
        if alg is not None:
            raise _invalid(index, "alg given without public_key")
        if secret is None:
            raise _invalid(index, "needs a secret, a public_key, or both")
    else:
        alg = "ES256" if alg is None else alg
        if alg not in ASSERTION_ALGORITHMS:
            raise _invalid(index, f"alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
        if not isinstance(public_jwk, dict) or "d" in public_jwk or "k" in public_jwk:
            raise _invalid(index, "public_key must be a public JWK object")
        # RFC 7517 §4.2-4.4: a key marked for another use, or for another algorithm, is not
        # one to check this device's signatures with (RFC 8725 §3.1: one key, one algorithm).
        key_ops = public_jwk.get("key_ops", ["verify"])
        if public_jwk.get("use", "sig") != "sig" or not (
            isinstance(key_ops, list) and "verify" in key_ops
        ):
            raise _invalid(index, "public_key is not marked for verifying signatures")
        if public_jwk.get("alg", alg) != alg:
            raise _invalid(index, f"public_key names another alg than {alg}")
        try:
            key = ALGORITHMS[alg].pyjwt.from_jwk(public_jwk)
            ALGORITHMS[alg].verify_only_key(key, device_id)
        except Exception as e:  # PyJWT raises several types for a bad JWK
            raise _invalid(index, f"public_key is not a valid {alg} public JWK") from e
    scope = entry.get("scope", DEFAULT_SCOPE)
    if not isinstance(scope, str) or not scope.split() or not set(scope.split()) <= KNOWN_SCOPES:
        raise _invalid(
            index, f"scope must be a space-separated subset of {' '.join(sorted(KNOWN_SCOPES))}"
        )
    return NewDevice(device_id, secret, public_jwk, alg, " ".join(scope.split()))


def parse_devices(body: Any) -> list[NewDevice]:
    """Validate a bulk registration body; the first wrong entry is named by index."""
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list):
        raise RequestError(400, "invalid_request", 'body must be {"devices": [...]}')
    entries = body["devices"]
    if not 1 <= len(entries) <= MAX_DEVICES_PER_REQUEST:
        raise RequestError(
            400, "invalid_request", f"1 to {MAX_DEVICES_PER_REQUEST} devices per request"
        )
    return [_parse_one(i, entry) for i, entry in enumerate(entries)]


def _hash_secret(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


class DeviceRegistry:
    """Devices in SQLite, with the set of active ids held in memory for the verifier."""

    def __init__(self, conn: sqlite3.Connection, reader: sqlite3.Connection | None = None) -> None:
        # ``conn`` is the writer (used off the event loop); ``reader`` serves the hot path's reads.
        self._conn = conn
        self._reader = conn if reader is None else reader
        # Active device id -> the whole second it was registered: tokens issued before that belong
        # to an earlier device of the same id (deleted, then registered again) and are refused.
        self._active: dict[str, int] = {}
        self._keys: OrderedDict[str, SigningKey] = OrderedDict()
        self._dummy_salt = secrets.token_bytes(16)
        self.reload()

    def reload(self) -> None:
        """Re-read which devices are active (after another worker changed it)."""
        rows = self._reader.execute("SELECT id, created_at FROM devices WHERE active = 1")
        self._active = {row[0]: int(row[1]) for row in rows}
        self._keys.clear()

    def registered_at(self, device_id: str) -> int | None:
        """The second an active device was registered, or None if it is not active."""
        since = self._active.get(device_id)
        if since is not None:
            return since
        # Another worker may have registered the device since our last reload (one upkeep tick);
        # without asking the database, its first tokens would be refused here as revoked.
        try:
            row = self._reader.execute(
                "SELECT created_at FROM devices WHERE id = ? AND active = 1", (device_id,)
            ).fetchone()
        except sqlite3.Error as e:  # not the token's fault: 503, not a 401 or a 500
            raise DatabaseUnavailable("device lookup failed") from e
        return None if row is None else int(row[0])

    def is_active(self, device_id: str) -> bool:
        return self.registered_at(device_id) is not None

    @property
    def active_count(self) -> int:
        return len(self._active)

    def register(self, devices: list[NewDevice]) -> int:
        """Insert all devices in one transaction, or none of them."""
        seen: dict[str, int] = {}
        for index, device in enumerate(devices):
            if device.id in seen:
                raise RequestError(
                    409,
                    "conflict",
                    f"devices[{index}]: id repeats devices[{seen[device.id]}]",
                    index=index,
                    id=device.id,
                )
            seen[device.id] = index
        now = time.time()
        rows = []
        for device in devices:
            salt = hash_ = None
            if device.secret is not None:
                salt = secrets.token_bytes(16)
                hash_ = _hash_secret(salt, device.secret)
            jwk = json.dumps(device.public_jwk) if device.public_jwk is not None else None
            rows.append((device.id, salt, hash_, jwk, device.alg, device.scope, now))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = self._existing_ids([d.id for d in devices])
            if existing:
                index = next(i for i, d in enumerate(devices) if d.id in existing)
                raise RequestError(
                    409,
                    "conflict",
                    f"devices[{index}]: id already registered",
                    index=index,
                    id=devices[index].id,
                )
            conn.executemany(
                "INSERT INTO devices (id, secret_salt, secret_hash, public_jwk, alg, scope, active,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                rows,
            )
            bump_revision(conn, "devices")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._active.update(dict.fromkeys(seen, int(now)))
        return len(rows)

    def _existing_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            query = "SELECT id FROM devices WHERE id IN (%s)" % ",".join("?" * len(chunk))  # noqa: S608, UP031 - placeholders only
            found.update(row[0] for row in self._conn.execute(query, chunk))
        return found

    def get(self, device_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT id, secret_hash IS NOT NULL, public_jwk, alg, scope, active, created_at,"
            " revoked_at FROM devices WHERE id = ?",
            (device_id,),
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "has_secret": bool(row[1]),
            "public_key": json.loads(row[2]) if row[2] else None,
            "alg": row[3],
            "scope": row[4],
            "active": bool(row[5]),
            "created_at": row[6],
            "revoked_at": row[7],
        }

    def revoke(self, device_id: str) -> dict[str, Any] | None:
        with transaction(self._conn):  # the flag and the bump other workers watch, together
            cursor = self._conn.execute(
                "UPDATE devices SET active = 0, revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                (time.time(), device_id),
            )
            if cursor.rowcount:
                bump_revision(self._conn, "devices")
        self._forget(device_id)
        return self.get(device_id)

    def delete(self, device_id: str) -> bool:
        with transaction(self._conn):
            cursor = self._conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            if cursor.rowcount:
                bump_revision(self._conn, "devices")
        self._forget(device_id)
        return cursor.rowcount > 0

    def _forget(self, device_id: str) -> None:
        self._active.pop(device_id, None)
        self._keys.pop(device_id, None)

    def check_secret(self, device_id: str, secret: str) -> str | None:
        """The device's scope if ``secret`` is its secret and it is active, else None.

        The comparison is constant-time, and an unknown device costs the same hash as a known one.
        """
        row = self._conn.execute(
            "SELECT secret_salt, secret_hash, scope, active FROM devices WHERE id = ?", (device_id,)
        ).fetchone()
        if row is None or row[1] is None:
            hmac.compare_digest(_hash_secret(self._dummy_salt, secret), bytes(32))
            return None
        matches = hmac.compare_digest(_hash_secret(row[0], secret), row[1])
        return str(row[2]) if matches and row[3] else None

    def assertion_key(self, device_id: str) -> tuple[SigningKey, str] | None:
        """The active device's registered public key (parsed once, then cached) and its scope."""
        key = self._keys.get(device_id)
        row = self._conn.execute(
            "SELECT public_jwk, alg, scope FROM devices WHERE id = ? AND active = 1", (device_id,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        if key is None:
            spec = ALGORITHMS[row[1]]
            key = spec.verify_only_key(spec.pyjwt.from_jwk(row[0]), device_id)
            self._keys[device_id] = key
            if len(self._keys) > _DEVICE_KEY_CACHE:
                self._keys.popitem(last=False)
        return key, str(row[2])
