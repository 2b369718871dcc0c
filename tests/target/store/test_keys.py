"""Signing keys: the JWKS, rotation with a grace period, keys persisted across restarts, and a key
pinned by ``--signing-key``."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sim.run.embedded import EmbeddedTarget
from target.jose.algorithms import jwk_thumbprint
from target.store.registry import parse_devices
from tests.conftest import StartTarget
from tests.target.conftest import SharedTarget
from tests.target.helpers import (
    ALGS,
    ASYMMETRIC_ALGS,
    AUDIENCE,
    ISSUER,
    PYJWT,
    TIMEOUT_S,
    admin_headers,
    assert_refused,
    client_token,
    generate_key,
    get,
    header_of,
    new_device,
    pem,
    server_key,
    wait_until,
)

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _jwks(target: EmbeddedTarget) -> dict[str, Any]:
    response = requests.get(f"{target.url}/.well-known/jwks.json", timeout=TIMEOUT_S)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    jwks: dict[str, Any] = response.json()
    return jwks


def _kids(target: EmbeddedTarget) -> set[str]:
    return {key["kid"] for key in _jwks(target)["keys"]}


def _rotate(target: EmbeddedTarget) -> requests.Response:
    return requests.post(
        f"{target.url}/admin/keys/rotate", headers=admin_headers(target), timeout=TIMEOUT_S
    )


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
def test_jwks_serves_only_the_public_key_that_verifies_tokens(
    shared_target: SharedTarget, alg: str
) -> None:
    target = shared_target(alg)
    (jwk,) = _jwks(target)["keys"]
    assert not PRIVATE_JWK_MEMBERS & set(jwk), jwk
    assert jwk["alg"] == alg and jwk["use"] == "sig"
    assert jwk["kid"] == server_key(target).kid == jwk_thumbprint(jwk)  # RFC 7638 thumbprint
    device = new_device(target)
    token = client_token(target, device)
    assert header_of(token)["kid"] == jwk["kid"]
    # An outside verifier holding only the JWKS accepts the token.
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER
    )
    assert claims["sub"] == device.id
    # And the key served is the public half of the key the server signs with.
    public = server_key(target).private.public_key()
    assert jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_jwks_is_empty_for_hmac_never_the_secret(shared_target: SharedTarget, alg: str) -> None:
    target = shared_target(alg)
    response = requests.get(f"{target.url}/.well-known/jwks.json", timeout=TIMEOUT_S)
    assert response.json() == {"keys": []}
    secret = server_key(target).private
    assert jwt.utils.base64url_encode(secret).decode() not in response.text
    assert secret.hex() not in response.text


@pytest.mark.parametrize("alg", ["HS256", "ES256", "EdDSA", "RS256"])
def test_rotation_keeps_old_tokens_for_the_grace_period_then_refuses_them(
    start_target: StartTarget, alg: str
) -> None:
    target = start_target(alg, key_grace=1)
    device = new_device(target)
    old_token = client_token(target, device)
    old_kid = header_of(old_token)["kid"]

    response = _rotate(target)
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["previous_kid"] == old_kid
    assert rotated["kid"] != old_kid
    assert rotated["alg"] == alg and rotated["grace_s"] == 1
    assert server_key(target).kid == rotated["kid"]

    new_token = client_token(target, device)
    assert header_of(new_token)["kid"] == rotated["kid"]
    # During the grace period both keys verify, and the JWKS publishes both.
    assert get(target, "/api/data", old_token).status_code == 200
    assert get(target, "/api/data", new_token).status_code == 200
    if alg in ASYMMETRIC_ALGS:
        assert _kids(target) == {old_kid, rotated["kid"]}

    # After the grace period (plus one upkeep tick) the old key is gone.
    assert wait_until(lambda: get(target, "/api/data", old_token).status_code == 401, 5.0)
    assert_refused(get(target, "/api/data", old_token), "signature")
    assert get(target, "/api/data", new_token).status_code == 200
    if alg in ASYMMETRIC_ALGS:
        assert _kids(target) == {rotated["kid"]}
    else:
        assert _jwks(target) == {"keys": []}


def test_default_grace_keeps_old_tokens_verifying(start_target: StartTarget) -> None:
    """Without --key-grace, the grace is the token lifetime plus leeway: nothing is cut short."""
    target = start_target("ES256", token_ttl=60, leeway=5)
    device = new_device(target)
    old_token = client_token(target, device)
    rotated = _rotate(target).json()
    assert rotated["grace_s"] == 65
    assert get(target, "/api/data", old_token).status_code == 200
    # A second rotation retires the middle key too; the first is still within its grace.
    second = _rotate(target).json()
    assert second["previous_kid"] == rotated["kid"]
    assert _kids(target) == {header_of(old_token)["kid"], rotated["kid"], second["kid"]}
    assert get(target, "/api/data", old_token).status_code == 200


def test_rotation_is_stored_with_the_old_key_marked_retired(start_target: StartTarget) -> None:
    target = start_target("EdDSA", key_grace=30)
    old_kid = server_key(target).kid
    new_kid = _rotate(target).json()["kid"]
    with sqlite3.connect(target.db) as conn:
        rows = dict(conn.execute("SELECT kid, retired_at IS NOT NULL FROM signing_keys"))
    conn.close()
    assert rows == {old_kid: 1, new_kid: 0}


@pytest.mark.slow
@pytest.mark.parametrize("alg", ["HS256", "ES256", "PS256"])
def test_keys_and_devices_survive_a_restart(tmp_path: Path, alg: str) -> None:
    db = str(tmp_path / "target.db")
    with EmbeddedTarget(alg, db=db) as first:
        device = new_device(first)
        token = client_token(first, device)
        kid = server_key(first).kid
        assert get(first, "/api/data", token).status_code == 200
    with EmbeddedTarget(alg, db=db) as second:
        assert server_key(second).kid == kid
        assert get(second, "/api/data", token).status_code == 200
        assert header_of(client_token(second, device))["kid"] == kid


@pytest.mark.slow
def test_retired_key_grace_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "target.db")
    with EmbeddedTarget("ES256", db=db, key_grace=120) as first:
        device = new_device(first)
        old_token = client_token(first, device)
        assert _rotate(first).status_code == 200
    with EmbeddedTarget("ES256", db=db, key_grace=120) as second:
        assert get(second, "/api/data", old_token).status_code == 200
        assert len(_kids(second)) == 2


@pytest.mark.slow
def test_a_restart_with_another_algorithm_makes_its_own_key(tmp_path: Path) -> None:
    db = str(tmp_path / "target.db")
    with EmbeddedTarget("ES256", db=db) as first:
        device = new_device(first)
        es_token = client_token(first, device)
    with EmbeddedTarget("EdDSA", db=db) as second:
        # The device is still registered, but an ES256 token is not an allowed algorithm now.
        assert_refused(get(second, "/api/data", es_token), "signature")
        assert header_of(client_token(second, device))["alg"] == "EdDSA"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "ES384"])
def test_signing_key_file_is_the_key_in_the_jwks(
    start_target: StartTarget, tmp_path: Path, alg: str
) -> None:
    private = generate_key(alg)
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(pem(private))
    target = start_target(alg, signing_key=key_file)
    (jwk,) = _jwks(target)["keys"]
    own = PYJWT[alg].to_jwk(private.public_key(), as_dict=True)
    assert {name: jwk[name] for name in own} == own  # the same public key, member for member
    assert jwk["kid"] == jwk_thumbprint(own)
    assert not PRIVATE_JWK_MEMBERS & set(jwk)
    device = new_device(target)
    token = client_token(target, device)
    claims = jwt.decode(token, private.public_key(), algorithms=[alg], audience=AUDIENCE)
    assert claims["sub"] == device.id
    # A pinned key cannot be rotated away.
    response = _rotate(target)
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


def test_hmac_signing_key_file_signs_the_tokens(start_target: StartTarget, tmp_path: Path) -> None:
    secret = secrets.token_bytes(32)
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(secret)
    target = start_target("HS256", signing_key=key_file)
    device = new_device(target)
    token = client_token(target, device)
    assert jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE)
    assert _jwks(target) == {"keys": []}


@pytest.mark.parametrize("alg", ALGS)
def test_private_key_is_stored_as_pkcs8_pem_or_raw_secret(
    shared_target: SharedTarget, alg: str
) -> None:
    target = shared_target(alg)
    with sqlite3.connect(target.db) as conn:
        (private,) = conn.execute(
            "SELECT private FROM signing_keys WHERE alg = ? AND retired_at IS NULL", (alg,)
        ).fetchone()
    conn.close()
    if alg.startswith("HS"):
        assert isinstance(private, bytes) and len(private) >= 32
    else:
        assert private.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_worker_accepts_another_workers_new_key_at_once(tmp_path: Path) -> None:
    """Regression: after a rotation in one worker, another refused the new key's tokens as
    "unknown kid" until its next upkeep tick; an unknown kid now makes it look for a rotation.
    Two TargetStates on one database file are two workers, without the kernel's say in which
    worker answers."""
    from target.settings import Settings
    from target.state import TargetState

    settings = Settings(alg="ES256", db=str(tmp_path / "target.db"))
    rotating, other = TargetState.build(settings), TargetState.build(settings)
    try:
        rotating.registry.register(
            parse_devices({"devices": [{"id": "dev-1", "secret": secrets.token_urlsafe(24)}]})
        )
        new_key, _ = rotating.keys.rotate()
        registration = rotating.registry.registered_at("dev-1")
        token = rotating.issuer.mint("dev-1", "config:read", registration=registration)
        assert header_of(token)["kid"] == new_key.kid
        assert other.verifier.verify(token).sub == "dev-1"
    finally:
        rotating.close()
        other.close()
