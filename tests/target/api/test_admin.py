"""Admin endpoints: bulk registration (all or nothing), records, revoke, delete, admin auth."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from sim.run.embedded import EmbeddedTarget
from tests.target.conftest import SharedTarget
from tests.target.helpers import (
    ASSERTION_ALGS,
    DEFAULT_SCOPE,
    TIMEOUT_S,
    admin_headers,
    assert_refused,
    b64url,
    b64url_decode,
    client_token,
    generate_key,
    get,
    new_device,
    public_jwk,
    register,
    unique_id,
)


@pytest.fixture(scope="module")
def target(shared_target: SharedTarget) -> EmbeddedTarget:
    return shared_target("ES256")


def _device(target: EmbeddedTarget, device_id: str) -> requests.Response:
    return requests.get(
        f"{target.url}/admin/devices/{device_id}", headers=admin_headers(target), timeout=TIMEOUT_S
    )


def _exists(target: EmbeddedTarget, device_id: str) -> bool:
    status = _device(target, device_id).status_code
    assert status in (200, 404)
    return status == 200


def _secret() -> str:
    return secrets.token_urlsafe(24)


def test_bulk_registration_creates_every_device(target: EmbeddedTarget) -> None:
    key_devices = [
        {"id": unique_id(), "public_key": public_jwk(alg, generate_key(alg)), "alg": alg}
        for alg in ASSERTION_ALGS
    ]
    secret_devices = [{"id": unique_id(), "secret": _secret()} for _ in range(50)]
    both = {"id": unique_id(), "secret": _secret(), "public_key": key_devices[0]["public_key"]}
    narrow = {"id": unique_id(), "secret": _secret(), "scope": "telemetry:write"}
    devices: list[dict[str, Any]] = [*key_devices, *secret_devices, both, narrow]
    response = register(target, devices)
    assert response.status_code == 201, response.text
    assert response.json() == {"created": len(devices)}
    for entry in devices:
        record = _device(target, entry["id"]).json()
        assert record["id"] == entry["id"]
        assert record["active"] is True
        assert record["revoked_at"] is None
        assert record["has_secret"] is ("secret" in entry)
        assert record["scope"] == entry.get("scope", DEFAULT_SCOPE)
        if "public_key" in entry:
            assert record["public_key"] == entry["public_key"]
            assert record["alg"] == entry.get("alg", "ES256")
        else:
            assert record["public_key"] is None
            assert record["alg"] is None


def test_a_key_marked_for_signatures_and_its_alg_is_accepted(target: EmbeddedTarget) -> None:
    jwk = {**ED25519_JWK, "use": "sig", "key_ops": ["verify"], "alg": "EdDSA", "kid": "k1"}
    response = register(target, [{"id": unique_id(), "public_key": jwk, "alg": "EdDSA"}])
    assert response.status_code == 201, response.text


def test_device_record_never_carries_a_secret_or_hash(target: EmbeddedTarget) -> None:
    secret = _secret()
    device_id = unique_id()
    assert register(target, [{"id": device_id, "secret": secret}]).status_code == 201
    response = _device(target, device_id)
    assert response.status_code == 200
    record = response.json()
    assert set(record) == {
        "id",
        "active",
        "scope",
        "alg",
        "public_key",
        "has_secret",
        "created_at",
        "revoked_at",
    }
    assert record["has_secret"] is True
    assert secret not in response.text
    assert "hash" not in response.text and "salt" not in response.text
    assert time.time() - 60 < record["created_at"] <= time.time()


def test_duplicate_in_the_batch_is_409_and_nothing_is_written(target: EmbeddedTarget) -> None:
    valid, repeated = unique_id(), unique_id()
    response = register(
        target,
        [
            {"id": valid, "secret": _secret()},
            {"id": repeated, "secret": _secret()},
            {"id": repeated, "secret": _secret()},
        ],
    )
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert body["index"] == 2 and body["id"] == repeated
    assert body["error_description"].startswith("devices[2]")
    assert not _exists(target, valid)
    assert not _exists(target, repeated)


def test_already_registered_id_is_409_and_nothing_is_written(target: EmbeddedTarget) -> None:
    existing = new_device(target)
    valid_before, valid_after = unique_id(), unique_id()
    response = register(
        target,
        [
            {"id": valid_before, "secret": _secret()},
            {"id": existing.id, "secret": _secret()},
            {"id": valid_after, "secret": _secret()},
        ],
    )
    assert response.status_code == 409
    assert response.json()["index"] == 1
    assert response.json()["id"] == existing.id
    assert not _exists(target, valid_before)
    assert not _exists(target, valid_after)
    # The existing device is untouched: its original secret still works.
    assert client_token(target, existing)


S = "kq3V9x-Lm2Pz7RtB_wY4nE8cJ0hG"  # a secret of valid length and randomness
ED25519_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}


# Each entry is wrong in one way; "x" stands for a fresh id.
def _weak_jwk(alg: str, private: Any) -> dict[str, Any]:
    return public_jwk(alg, private)


def _off_curve_p256_jwk() -> dict[str, Any]:
    """A P-256 JWK whose point is not on the curve (y moved by one)."""
    jwk = public_jwk("ES256", generate_key("ES256"))
    y = int.from_bytes(b64url_decode(jwk["y"]), "big") + 1
    return {**jwk, "y": b64url(y.to_bytes(32, "big"))}


# Issue 10 item 9: weak device keys were registered and got tokens.
WEAK_KEYS: list[tuple[str, dict[str, Any], str]] = [
    (
        "rsa-1024",
        _weak_jwk("RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "RS256",
    ),
    (
        "rsa-e-3",
        _weak_jwk("RS256", rsa.generate_private_key(public_exponent=3, key_size=2048)),
        "RS256",
    ),
    ("ec-p384-for-es256", public_jwk("ES384", generate_key("ES384")), "ES256"),
    ("ec-point-off-the-curve", _off_curve_p256_jwk(), "ES256"),
]


INVALID_ENTRIES: list[tuple[str, Any]] = [
    ("not-an-object", "dev-1"),
    ("id-missing", {"secret": S}),
    ("id-empty", {"id": "", "secret": S}),
    ("id-slash", {"id": "a/b", "secret": S}),
    ("id-space", {"id": "a b", "secret": S}),
    ("id-too-long", {"id": "a" * 129, "secret": S}),
    ("id-not-a-string", {"id": 7, "secret": S}),
    ("no-credential", {"id": "x"}),
    ("secret-short", {"id": "x", "secret": "s" * 23}),
    ("secret-long", {"id": "x", "secret": "s" * 513}),
    ("secret-not-a-string", {"id": "x", "secret": 12345678901234567890123456}),
    ("alg-without-key", {"id": "x", "secret": S, "alg": "ES256"}),
    ("alg-hmac", {"id": "x", "public_key": {"kty": "oct", "k": "AAAA"}, "alg": "HS256"}),
    ("key-not-an-object", {"id": "x", "public_key": "-----BEGIN PUBLIC KEY-----"}),
    ("key-private", {"id": "x", "public_key": {**ED25519_JWK, "d": "c2VjcmV0"}, "alg": "EdDSA"}),
    ("key-symmetric", {"id": "x", "public_key": {"kty": "oct", "k": "c2VjcmV0"}}),
    ("key-garbage", {"id": "x", "public_key": {"kty": "EC", "crv": "P-256", "x": "!", "y": "?"}}),
    ("key-wrong-type-for-alg", {"id": "x", "public_key": ED25519_JWK, "alg": "ES256"}),
    # A key marked for another use or algorithm is not for this device's signatures.
    ("key-use-enc", {"id": "x", "public_key": {**ED25519_JWK, "use": "enc"}, "alg": "EdDSA"}),
    (
        "key-ops-encrypt",
        {"id": "x", "public_key": {**ED25519_JWK, "key_ops": ["encrypt"]}, "alg": "EdDSA"},
    ),
    (
        "key-ops-not-a-list",
        {"id": "x", "public_key": {**ED25519_JWK, "key_ops": "verify"}, "alg": "EdDSA"},
    ),
    (
        "key-ops-unhashable",
        {"id": "x", "public_key": {**ED25519_JWK, "key_ops": [["verify"]]}, "alg": "EdDSA"},
    ),
    ("key-alg-other", {"id": "x", "public_key": {**ED25519_JWK, "alg": "ES256"}, "alg": "EdDSA"}),
    *((f"key-{name}", {"id": "x", "public_key": jwk, "alg": alg}) for name, jwk, alg in WEAK_KEYS),
    ("scope-unknown", {"id": "x", "secret": S, "scope": "admin"}),
    ("scope-empty", {"id": "x", "secret": S, "scope": ""}),
    ("scope-not-a-string", {"id": "x", "secret": S, "scope": ["config:read"]}),
    ("unknown-member", {"id": "x", "secret": S, "password": "p"}),
]


@pytest.mark.parametrize(
    "entry", [entry for _, entry in INVALID_ENTRIES], ids=[name for name, _ in INVALID_ENTRIES]
)
def test_invalid_entry_is_422_naming_its_index(target: EmbeddedTarget, entry: Any) -> None:
    first = unique_id()
    if isinstance(entry, dict) and entry.get("id") == "x":
        entry = {**entry, "id": unique_id()}
    response = register(target, [{"id": first, "secret": _secret()}, entry])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_device"
    assert body["index"] == 1
    assert body["error_description"].startswith("devices[1]: ")
    assert not _exists(target, first)
    if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
        assert not _exists(target, entry["id"])


def test_an_invalid_entry_does_not_echo_a_secret(target: EmbeddedTarget) -> None:
    secret = _secret()
    response = register(target, [{"id": "bad id", "secret": secret}])
    assert response.status_code == 422
    assert secret not in response.text


@pytest.mark.parametrize(
    "body",
    [{}, {"devices": []}, {"devices": "dev"}, [], {"device": [{"id": "x", "secret": S}]}],
    ids=["empty-object", "empty-list", "not-a-list", "an-array", "misspelt"],
)
def test_body_of_the_wrong_shape_is_400(target: EmbeddedTarget, body: Any) -> None:
    response = requests.post(
        f"{target.url}/admin/devices", json=body, headers=admin_headers(target), timeout=TIMEOUT_S
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_unknown_device_is_404(target: EmbeddedTarget) -> None:
    for method, path in (
        ("GET", "/admin/devices/no-such-device"),
        ("DELETE", "/admin/devices/no-such-device"),
        ("POST", "/admin/devices/no-such-device/revoke"),
    ):
        response = requests.request(
            method, f"{target.url}{path}", headers=admin_headers(target), timeout=TIMEOUT_S
        )
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"


def test_revoke_refuses_tokens_on_the_very_next_request(target: EmbeddedTarget) -> None:
    device = new_device(target, key_alg="EdDSA")
    token = client_token(target, device)
    assert get(target, "/api/data", token).status_code == 200
    response = requests.post(
        f"{target.url}/admin/devices/{device.id}/revoke",
        headers=admin_headers(target),
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 200
    record = response.json()
    assert record["id"] == device.id and record["active"] is False
    assert time.time() - 60 < record["revoked_at"] <= time.time()
    refused = get(target, "/api/data", token)
    assert_refused(refused, "revoked")
    assert refused.json()["error_description"].startswith("revoked")
    assert get(target, f"/devices/{device.id}/config", token).status_code == 401
    # Revoking twice is harmless and keeps the first revocation time.
    again = requests.post(
        f"{target.url}/admin/devices/{device.id}/revoke",
        headers=admin_headers(target),
        timeout=TIMEOUT_S,
    )
    assert again.status_code == 200 and again.json()["revoked_at"] == record["revoked_at"]


def test_delete_removes_the_device_and_refuses_its_tokens(target: EmbeddedTarget) -> None:
    device = new_device(target)
    token = client_token(target, device)
    assert get(target, "/api/data", token).status_code == 200
    url = f"{target.url}/admin/devices/{device.id}"
    response = requests.delete(url, headers=admin_headers(target), timeout=TIMEOUT_S)
    assert response.status_code == 204
    assert response.content == b""
    assert not _exists(target, device.id)
    assert_refused(get(target, "/api/data", token), "revoked")
    assert requests.delete(url, headers=admin_headers(target), timeout=TIMEOUT_S).status_code == 404


def test_an_id_deleted_and_registered_again_at_once_does_not_revive_old_tokens(
    target: EmbeddedTarget,
) -> None:
    """Issue 10 item 8: tokens were bound to the whole second of registration, so an id deleted
    and registered again within that second brought its old tokens back to life."""
    device = new_device(target)
    old_token = client_token(target, device)
    url = f"{target.url}/admin/devices/{device.id}"
    for _ in range(3):  # each round well inside one second
        assert (
            requests.delete(url, headers=admin_headers(target), timeout=TIMEOUT_S).status_code
            == 204
        )
        response = register(target, [{"id": device.id, "secret": _secret()}])
        assert response.status_code == 201, response.text
        assert_refused(get(target, "/api/data", old_token), "revoked")


ADMIN_ROUTES = [
    ("POST", "/admin/devices"),
    ("GET", "/admin/devices/{id}"),
    ("DELETE", "/admin/devices/{id}"),
    ("POST", "/admin/devices/{id}/revoke"),
    ("POST", "/admin/keys/rotate"),
    ("GET", "/admin/stats"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-admin-key-0123456789", "Bearer ", "Basic YWRtaW46YWRtaW4=", "<admin key>"],
    ids=["missing", "wrong", "empty", "basic", "key-without-scheme"],
)
def test_admin_routes_need_the_admin_key_and_change_nothing_without_it(
    target: EmbeddedTarget, method: str, path: str, authorization: str | None
) -> None:
    device = new_device(target)
    headers = {}
    if authorization == "<admin key>":
        headers["Authorization"] = target.admin_key
    elif authorization is not None:
        headers["Authorization"] = authorization
    jwks_before = requests.get(f"{target.url}/.well-known/jwks.json", timeout=TIMEOUT_S).json()
    response = requests.request(
        method,
        f"{target.url}{path.replace('{id}', device.id)}",
        json={"devices": [{"id": unique_id(), "secret": _secret()}]},
        headers=headers,
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    # Issue 10 item 11: a 401 names the scheme that would work (RFC 7235 §3.1).
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="fleetbench"')
    record = _device(target, device.id).json()
    assert record["active"] is True
    assert requests.get(f"{target.url}/.well-known/jwks.json", timeout=TIMEOUT_S).json() == (
        jwks_before
    )
    assert target.admin_key not in response.text


def test_admin_key_is_not_a_device_token(target: EmbeddedTarget) -> None:
    """The admin key opens admin routes only; as a bearer token elsewhere it is malformed."""
    response = get(target, "/api/data", target.admin_key)
    assert_refused(response, "malformed")
