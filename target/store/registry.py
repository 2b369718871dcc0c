"""The device registry: who may get tokens, with which credential, and who is still active."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import sqlite3
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from target.errors import (
    DuplicateDeviceError,
    InvalidDeviceError,
    InvalidRegistrationError,
)
from target.jose.algorithms import ALGORITHMS, ASSERTION_ALGORITHMS, SigningKey
from target.store.db import DatabaseUnavailable, bump_revision, transaction

__all__ = ["DEFAULT_SCOPE", "DeviceRegistry", "NewDevice", "parse_devices", "registration_stamp"]

DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Device secrets are machine-made: at least 24 characters, and refused when they look made by hand
# (see _low_entropy). With that much entropy a fast keyed hash is as safe as a slow KDF.
MIN_SECRET_CHARS = 24
# Character-frequency entropy (bits over the whole secret) a secret must reach: 24 random hex
# digits (96 bits) essentially never fall below it, "A" * 32 is 0 and "ab" * 16 is 32.
MIN_SECRET_ENTROPY_BITS = 64
_PATTERN_CHARS = 6
MAX_SECRET_CHARS = 512
MAX_DEVICES_PER_REQUEST = 10_000
# The members a registration entry may have; target/api/openapi.py documents each of them.
REGISTRATION_MEMBERS = ("id", "secret", "public_key", "alg", "scope")
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


# RFC 7518 §3.3: RSA keys of at least 2048 bits; e = 65537 is what every sound key uses, and a
# small exponent (e = 3) invites the signature forgeries of Bleichenbacher'06 against lax verifiers.
MIN_RSA_BITS = 2048
RSA_EXPONENT = 65537
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}


class WeakKeyError(ValueError):
    """A device public key too weak, or of the wrong curve, for its algorithm."""


def check_device_key(alg: str, key: Any) -> None:
    """Refuse an RSA key under 2048 bits or with e != 65537, and an EC key on another curve
    than its algorithm's or whose point is not on the curve."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise WeakKeyError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        if key.public_numbers().e != RSA_EXPONENT:
            raise WeakKeyError(f"RSA keys need the public exponent {RSA_EXPONENT}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(alg)
        if curve is None or not isinstance(key.curve, curve):
            raise WeakKeyError(f"{alg} needs a key on {curve.name if curve else 'its'} curve")
        # cryptography refuses an off-curve point when it builds the key; make sure of it here,
        # since an invalid-curve point would leak nothing to us but must never be accepted.
        numbers = key.public_numbers()
        ec.EllipticCurvePublicNumbers(numbers.x, numbers.y, key.curve).public_key()


def registration_stamp(created_at: float) -> int:
    """A registration's identity as access tokens carry it (``reg``): its ``created_at`` in whole
    microseconds. Deleting an id and registering it again takes far longer than a microsecond, and
    an integer keeps every token the same size."""
    return round(float(created_at) * 1_000_000)


def _parse_one(index: int, entry: Any) -> NewDevice:
    if not isinstance(entry, dict):
        raise InvalidDeviceError(index, "must be an object")
    unknown = set(entry).difference(REGISTRATION_MEMBERS)
    if unknown:
        raise InvalidDeviceError(index, f"unknown member {sorted(unknown)[0][:40]!r}")
    device_id = entry.get("id")
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise InvalidDeviceError(index, "id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    secret = entry.get("secret")
    if secret is not None and (
        not isinstance(secret, str) or not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS
    ):
        raise InvalidDeviceError(
            index, f"secret must be a string of {MIN_SECRET_CHARS}-{MAX_SECRET_CHARS} characters"
        )
    if secret is not None and _low_entropy(secret):
        raise InvalidDeviceError(
            index,
            "secret looks made by hand (repeats, runs or too few distinct characters);"
            " use random bytes, such as secrets.token_urlsafe(32)",
        )
    public_jwk = entry.get("public_key")
    alg = entry.get("alg")
    if public_jwk is None:
        if alg is not None:
            raise InvalidDeviceError(index, "alg given without public_key")
        if secret is None:
            raise InvalidDeviceError(index, "needs a secret, a public_key, or both")
    else:
        alg = "ES256" if alg is None else alg
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidDeviceError(index, f"alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
        if not isinstance(public_jwk, dict) or "d" in public_jwk or "k" in public_jwk:
            raise InvalidDeviceError(index, "public_key must be a public JWK object")
        # RFC 7517 §4.2-4.4: a key marked for another use, or for another algorithm, is not
        # one to check this device's signatures with (RFC 8725 §3.1: one key, one algorithm).
        key_ops = public_jwk.get("key_ops", ["verify"])
        if public_jwk.get("use", "sig") != "sig" or not (
            isinstance(key_ops, list) and "verify" in key_ops
        ):
            raise InvalidDeviceError(index, "public_key is not marked for verifying signatures")
        if public_jwk.get("alg", alg) != alg:
            raise InvalidDeviceError(index, f"public_key names another alg than {alg}")
        try:
            key = ALGORITHMS[alg].pyjwt.from_jwk(public_jwk)
            ALGORITHMS[alg].verify_only_key(key, device_id)
        except Exception as e:  # PyJWT raises several types for a bad JWK
            raise InvalidDeviceError(index, f"public_key is not a valid {alg} public JWK") from e
        try:
            check_device_key(alg, key)
        except ValueError as e:  # WeakKeyError, or cryptography's own for a point off the curve
            reason = str(e) if isinstance(e, WeakKeyError) else "EC point is not on the curve"
            raise InvalidDeviceError(index, f"public_key refused: {reason}") from e
    scope = entry.get("scope", DEFAULT_SCOPE)
    if not isinstance(scope, str) or not scope.split() or not set(scope.split()) <= KNOWN_SCOPES:
        raise InvalidDeviceError(
            index, f"scope must be a space-separated subset of {' '.join(sorted(KNOWN_SCOPES))}"
        )
    return NewDevice(device_id, secret, public_jwk, alg, " ".join(scope.split()))


def parse_devices(body: Any) -> list[NewDevice]:
    """Validate a bulk registration body; the first wrong entry is named by index."""
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list):
        raise InvalidRegistrationError('body must be {"devices": [...]}')
    entries = body["devices"]
    if not 1 <= len(entries) <= MAX_DEVICES_PER_REQUEST:
        raise InvalidRegistrationError(f"1 to {MAX_DEVICES_PER_REQUEST} devices per request")
    return [_parse_one(i, entry) for i, entry in enumerate(entries)]


def _low_entropy(secret: str) -> bool:
    """Whether ``secret`` looks made by hand rather than drawn at random: its character
    frequencies carry under 64 bits, or it repeats a 6-character piece, or it holds a run of 6
    consecutive characters ("abcdef", "987654"). Random secrets of 24+ characters pass."""
    counts = Counter(secret)
    n = len(secret)
    bits = -sum(c * math.log2(c / n) for c in counts.values())
    if bits < MIN_SECRET_ENTROPY_BITS:
        return True
    pieces = [secret[i : i + _PATTERN_CHARS] for i in range(n - _PATTERN_CHARS + 1)]
    if len(set(pieces)) != len(pieces):
        return True
    run, last_step = 1, 0
    for previous, current in itertools.pairwise(map(ord, secret)):
        step = current - previous
        run = run + 1 if step in (1, -1) and (run == 1 or step == last_step) else 1
        last_step = step
        if run >= _PATTERN_CHARS:
            return True
    return False


# Stored secret hashes: HMAC-SHA256 keyed with the database's pepper over salt || secret, tagged
# with a version byte. A hash without the tag is the earlier plain SHA-256(salt || secret), still
# checked so devices registered before keep working.
_HMAC_TAG = b"\x01"


def _hash_secret(pepper: bytes, salt: bytes, secret: str) -> bytes:
    return _HMAC_TAG + hmac.digest(pepper, salt + secret.encode(), "sha256")


def _matches(pepper: bytes, salt: bytes, secret: str, stored: bytes) -> bool:
    if stored[:1] == _HMAC_TAG and len(stored) == 33:
        return hmac.compare_digest(_hash_secret(pepper, salt, secret), stored)
    return hmac.compare_digest(hashlib.sha256(salt + secret.encode()).digest(), stored)


def _pepper(conn: sqlite3.Connection) -> bytes:
    """The database's secret-hash key: made by whichever worker gets there first, then shared."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS secret_pepper"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), pepper BLOB NOT NULL)"
    )
    conn.execute(
        "INSERT OR IGNORE INTO secret_pepper (id, pepper) VALUES (1, ?)", (secrets.token_bytes(32),)
    )
    return bytes(conn.execute("SELECT pepper FROM secret_pepper WHERE id = 1").fetchone()[0])


class DeviceRegistry:
    """Devices in SQLite, with the set of active ids held in memory for the verifier."""

    def __init__(self, conn: sqlite3.Connection, reader: sqlite3.Connection | None = None) -> None:
        # ``conn`` is the writer (used off the event loop); ``reader`` serves the hot path's reads.
        self._conn = conn
        self._reader = conn if reader is None else reader
        # Active device id -> its registration stamp (``created_at`` in microseconds): tokens carry
        # it as ``reg``, so an earlier device of the same id (deleted, then registered again, even
        # in the same second) does not revive its tokens.
        self._active: dict[str, int] = {}
        self._keys: OrderedDict[str, SigningKey] = OrderedDict()
        self._dummy_salt = secrets.token_bytes(16)
        self._pepper = _pepper(conn)
        self.reload()

    def reload(self) -> None:
        """Re-read which devices are active (after another worker changed it)."""
        rows = self._reader.execute("SELECT id, created_at FROM devices WHERE active = 1")
        self._active = {row[0]: registration_stamp(row[1]) for row in rows}
        self._keys.clear()

    def registered_at(self, device_id: str) -> int | None:
        """An active device's registration stamp, or None if it is not active."""
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
        return None if row is None else registration_stamp(row[0])

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
                raise DuplicateDeviceError(index, device.id, seen[device.id])
            seen[device.id] = index
        now = time.time()
        rows = []
        for device in devices:
            salt = hash_ = None
            if device.secret is not None:
                salt = secrets.token_bytes(16)
                hash_ = _hash_secret(self._pepper, salt, device.secret)
            jwk = json.dumps(device.public_jwk) if device.public_jwk is not None else None
            rows.append((device.id, salt, hash_, jwk, device.alg, device.scope, now))
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = self._existing_ids([d.id for d in devices])
            if existing:
                index = next(i for i, d in enumerate(devices) if d.id in existing)
                raise DuplicateDeviceError(index, devices[index].id)
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
        self._active.update(dict.fromkeys(seen, registration_stamp(now)))
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

    def check_secret(self, device_id: str, secret: str) -> tuple[str, int] | None:
        """The device's scope and registration if ``secret`` is its secret and it is active.

        The comparison is constant-time, and an unknown device costs the same hash as a known one.
        """
        row = self._conn.execute(
            "SELECT secret_salt, secret_hash, scope, active, created_at FROM devices WHERE id = ?",
            (device_id,),
        ).fetchone()
        if row is None or row[1] is None:
            _matches(self._pepper, self._dummy_salt, secret, _HMAC_TAG + bytes(32))
            return None
        matches = _matches(self._pepper, row[0], secret, row[1])
        return (str(row[2]), registration_stamp(row[4])) if matches and row[3] else None

    def assertion_key(self, device_id: str) -> tuple[SigningKey, str, int] | None:
        """The active device's registered public key (parsed once, then cached), its scope and
        its registration."""
        key = self._keys.get(device_id)
        row = self._conn.execute(
            "SELECT public_jwk, alg, scope, created_at FROM devices WHERE id = ? AND active = 1",
            (device_id,),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        if key is None:
            spec = ALGORITHMS[row[1]]
            public = spec.pyjwt.from_jwk(row[0])
            try:
                check_device_key(row[1], public)  # a weak key stored before the check existed
            except ValueError:
                return None
            key = spec.verify_only_key(public, device_id)
            self._keys[device_id] = key
            if len(self._keys) > _DEVICE_KEY_CACHE:
                self._keys.popitem(last=False)
        return key, str(row[2]), registration_stamp(row[3])
