"""Talking to a real target from tests: admin calls, devices, tokens, and hand-made JWS.

Forged tokens are built here byte by byte (not with ``jwt.encode``, which refuses or normalises
many of the headers the verifier must refuse), signed with the target's real key read from its
SQLite file where a test needs a correctly signed token that breaks a rule.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from sim.run.embedded import EmbeddedTarget
from target.jose.vocabulary import client_credentials_form
from target.store.registry import registration_stamp

# The algorithms the suite runs against; HS384 shares all its code paths with HS256 and HS512.
ALGS = ("HS256", "ES256", "EdDSA", "RS256", "PS256", "ES384", "HS512")
ASYMMETRIC_ALGS = tuple(alg for alg in ALGS if not alg.startswith("HS"))
ASSERTION_ALGS = ("ES256", "EdDSA", "RS256")
REASONS = frozenset({"expired", "signature", "claims", "revoked", "malformed"})

ISSUER = "urn:fleetbench:target"
AUDIENCE = "urn:fleetbench:api"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_SCOPE = "telemetry:write config:read"
TIMEOUT_S = 10

PYJWT = get_default_algorithms()
_ids = itertools.count()


def unique_id(prefix: str = "dev") -> str:
    """A device id no other test uses, so tests can share one server."""
    return f"{prefix}-{next(_ids)}-{secrets.token_hex(4)}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".")[0]))
    return decoded


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return decoded


def sign(alg: str, key: Any, signing_input: bytes) -> bytes:
    """A JWS signature (raw r||s for ECDSA) made with PyJWT's algorithm object for ``alg``."""
    signature: bytes = PYJWT[alg].sign(signing_input, key)
    return signature


def compact(header: dict[str, Any], payload: dict[str, Any] | bytes, alg: str, key: Any) -> str:
    """``header.payload.signature``, with the header and payload exactly as given."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64url_json(header)}.{b64url(body)}"
    return f"{signing_input}.{b64url(sign(alg, key, signing_input.encode()))}"


def generate_key(alg: str) -> Any:
    """A fresh private key (or HMAC secret) for ``alg``."""
    if alg.startswith("HS"):
        return secrets.token_bytes(64)
    if alg in ("ES256", "ES384"):
        return ec.generate_private_key(ec.SECP256R1() if alg == "ES256" else ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(alg: str, private: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = PYJWT[alg].to_jwk(private.public_key(), as_dict=True)
    return jwk


def pem(private: Any) -> bytes:
    data: bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data


# ---- talking to the target ----------------------------------------------------------------------


def admin_headers(target: EmbeddedTarget) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.admin_key}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(target: EmbeddedTarget, devices: list[dict[str, Any]]) -> requests.Response:
    return requests.post(
        f"{target.url}/admin/devices",
        json={"devices": devices},
        headers=admin_headers(target),
        timeout=TIMEOUT_S,
    )


@dataclass
class Device:
    """A registered device and its credentials, as a test holds them."""

    id: str
    secret: str | None = field(default=None, repr=False)
    key: Any = field(default=None, repr=False)  # the private key its assertions are signed with
    alg: str | None = None


def new_device(
    target: EmbeddedTarget,
    *,
    scope: str | None = None,
    key_alg: str | None = None,
    secret: bool = True,
) -> Device:
    """Register one device (a secret, and with ``key_alg`` a public key too) and return it."""
    device = Device(unique_id(), secrets.token_urlsafe(24) if secret else None)
    entry: dict[str, Any] = {"id": device.id}
    if device.secret is not None:
        entry["secret"] = device.secret
    if key_alg is not None:
        device.key, device.alg = generate_key(key_alg), key_alg
        entry["public_key"] = public_jwk(key_alg, device.key)
        entry["alg"] = key_alg
    if scope is not None:
        entry["scope"] = scope
    response = register(target, [entry])
    assert response.status_code == 201, response.text
    assert response.json() == {"created": 1}
    return device


def request_token(target: EmbeddedTarget, form: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(f"{target.url}/auth/token", data=form, timeout=TIMEOUT_S, **kwargs)


def client_token(target: EmbeddedTarget, device: Device, scope: str | None = None) -> str:
    """An access token for ``device`` by client_credentials in the form body."""
    assert device.secret is not None
    form = client_credentials_form(device.id, device.secret)
    if scope is not None:
        form["scope"] = scope
    response = request_token(target, form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def device_assertion(
    device: Device,
    *,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """An RFC 7523 assertion signed by ``device``'s own key under its registered algorithm;
    ``header`` and ``claims`` change or add to the defaults, ``drop`` removes claims."""
    assert device.key is not None and device.alg is not None
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": device.id,
        "sub": device.id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
    }
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    return compact(
        {"alg": device.alg, "typ": "JWT", **(header or {})}, payload, device.alg, device.key
    )


def get(target: EmbeddedTarget, path: str, token: str | None = None) -> requests.Response:
    headers = bearer(token) if token is not None else {}
    return requests.get(f"{target.url}{path}", headers=headers, timeout=TIMEOUT_S)


def send_reading(target: EmbeddedTarget, device_id: str, token: str, seq: int) -> requests.Response:
    return requests.post(
        f"{target.url}/devices/{device_id}/telemetry",
        json={"seq": seq, "ts": time.time(), "values": {"temp_c": 21.5}},
        headers=bearer(token),
        timeout=TIMEOUT_S,
    )


# ---- the server's own signing key, for correctly signed tokens that break a rule ---------------


@dataclass(frozen=True)
class ServerKey:
    kid: str
    alg: str
    private: Any  # a cryptography private key, or the HMAC secret bytes
    db: str | None = None  # the target's database, to bind forged tokens to a registration


def registration_of(db: str, device_id: str) -> int | None:
    """A device's registration stamp, which the target's tokens carry as ``reg``."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT created_at FROM devices WHERE id = ?", (device_id,)).fetchone()
    return None if row is None else registration_stamp(row[0])


def server_key(target: EmbeddedTarget) -> ServerKey:
    """The target's current signing key, read from its database (PKCS#8 PEM or raw HMAC bytes)."""
    with sqlite3.connect(target.db) as conn:
        kid, private = conn.execute(
            "SELECT kid, private FROM signing_keys WHERE alg = ? AND retired_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1",
            (target.alg,),
        ).fetchone()
    conn.close()
    if target.alg.startswith("HS"):
        return ServerKey(kid, target.alg, bytes(private), target.db)
    loaded = serialization.load_pem_private_key(private, password=None)
    return ServerKey(kid, target.alg, loaded, target.db)


def access_claims(sub: str, /, **overrides: Any) -> dict[str, Any]:
    """The claims our target puts in an access token, valid now."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "client_id": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        "scope": DEFAULT_SCOPE,
    }
    claims.update(overrides)
    return claims


def forge(
    key: ServerKey,
    sub: str,
    /,
    *,
    header: dict[str, Any] | None = None,
    drop_header: tuple[str, ...] = (),
    drop_claims: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A token signed with the server's real key, with header and claims changed as asked;
    bound to the device's current registration, as the target's own tokens are."""
    full_header: dict[str, Any] = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
    full_header.update(header or {})
    for name in drop_header:
        full_header.pop(name, None)
    if key.db is not None and "reg" not in claims:
        registration = registration_of(key.db, sub)
        if registration is not None:
            claims["reg"] = registration
    payload = access_claims(sub, **claims)
    for name in drop_claims:
        payload.pop(name, None)
    return compact(full_header, payload, key.alg, key.private)


# ---- reading answers ----------------------------------------------------------------------------

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def challenge_params(response: requests.Response) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer ...`` header."""
    value = response.headers.get("WWW-Authenticate", "")
    assert value.startswith("Bearer "), value
    return dict(_PARAM.findall(value))


def assert_refused(response: requests.Response, reason: str) -> None:
    """A 401 ``invalid_token`` whose description names ``reason`` as its class."""
    assert reason in REASONS
    assert response.status_code == 401, (response.status_code, response.text)
    params = challenge_params(response)
    assert params.get("realm") == "fleetbench"
    assert params.get("error") == "invalid_token", params
    assert params["error_description"].split(":")[0] == reason, params
    body = response.json()
    assert body["error"] == "invalid_token"
    assert body["error_description"] == params["error_description"]


def assert_no_credentials(response: requests.Response) -> None:
    """RFC 6750 §3.1: a request without bearer credentials gets a challenge with no error code."""
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="fleetbench"'


def assert_oauth_error(response: requests.Response, status: int, error: str) -> None:
    """An RFC 6749 §5.2 error: JSON ``{error, error_description}``, never cached."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passes; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
