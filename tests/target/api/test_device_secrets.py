"""Device secrets (issue 10 item 10): stored as a keyed hash under the database's pepper, and
refused at registration when they look made by hand rather than drawn at random."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3

import pytest

from tests.target.conftest import SharedTarget
from tests.target.helpers import Device, client_token, get, register, unique_id

HAND_MADE = [
    "A" * 32,
    "ab" * 16,
    "password1234password1234",
    "abcdefghijklmnopqrstuvwxyz012345",
    "device-secret-0001-device-secret-0001",
    "Zq8wk3-987654-Xy7Q2mN9pR4tV1bC",
]


@pytest.mark.parametrize("secret", HAND_MADE)
def test_a_hand_made_secret_is_refused_at_registration(
    shared_target: SharedTarget, secret: str
) -> None:
    target = shared_target("HS256")
    response = register(target, [{"id": unique_id(), "secret": secret}])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_device" and "secret" in body["error_description"]
    assert secret not in response.text


@pytest.mark.parametrize(
    "secret",
    [secrets.token_urlsafe(32), secrets.token_urlsafe(18), secrets.token_hex(16)],
    ids=["urlsafe-32", "urlsafe-18", "hex-16"],
)
def test_a_random_secret_is_accepted(shared_target: SharedTarget, secret: str) -> None:
    target = shared_target("HS256")
    device = Device(unique_id(), secret)
    assert register(target, [{"id": device.id, "secret": secret}]).status_code == 201
    assert get(target, "/api/data", client_token(target, device)).status_code == 200


def test_a_secret_is_stored_as_a_keyed_hash_not_a_plain_sha256(
    shared_target: SharedTarget,
) -> None:
    """With one unkeyed SHA-256, a copy of the devices table was enough to test guesses."""
    target = shared_target("HS256")
    device = Device(unique_id(), secrets.token_urlsafe(32))
    assert register(target, [{"id": device.id, "secret": device.secret}]).status_code == 201
    with contextlib.closing(sqlite3.connect(target.db)) as conn:
        salt, stored = conn.execute(
            "SELECT secret_salt, secret_hash FROM devices WHERE id = ?", (device.id,)
        ).fetchone()
    assert device.secret is not None
    assert bytes(stored) != hashlib.sha256(bytes(salt) + device.secret.encode()).digest()
    assert device.secret.encode() not in bytes(stored)


def test_a_secret_hashed_before_the_pepper_still_authenticates(
    shared_target: SharedTarget,
) -> None:
    """Devices registered by an earlier version keep their plain SHA-256 hash and still work."""
    target = shared_target("HS256")
    device = Device(unique_id(), secrets.token_urlsafe(32))
    assert register(target, [{"id": device.id, "secret": device.secret}]).status_code == 201
    assert device.secret is not None
    salt = secrets.token_bytes(16)
    legacy = hashlib.sha256(salt + device.secret.encode()).digest()
    with contextlib.closing(sqlite3.connect(target.db)) as conn, conn:
        conn.execute(
            "UPDATE devices SET secret_salt = ?, secret_hash = ? WHERE id = ?",
            (salt, legacy, device.id),
        )
    assert get(target, "/api/data", client_token(target, device)).status_code == 200
