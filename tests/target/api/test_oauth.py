"""The token endpoint (RFC 6749 §4.4 client credentials, RFC 7523 jwt-bearer, §5.2 errors)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
import requests

from sim.run.embedded import EmbeddedTarget
from tests.conftest import StartTarget
from tests.target.conftest import SharedTarget
from tests.target.helpers import (
    ALGS,
    ASSERTION_ALGS,
    AUDIENCE,
    DEFAULT_SCOPE,
    ISSUER,
    JWT_BEARER,
    TIMEOUT_S,
    Device,
    admin_headers,
    assert_oauth_error,
    b64url_json,
    claims_of,
    client_token,
    device_assertion,
    generate_key,
    get,
    header_of,
    new_device,
    register,
    request_token,
    send_reading,
    server_key,
    unique_id,
)


def _basic(client_id: str, secret: str) -> dict[str, str]:
    # RFC 6749 §2.3.1: both parts are form-encoded before base64.
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _bearer_grant(assertion: str) -> dict[str, str]:
    return {"grant_type": JWT_BEARER, "assertion": assertion}


@pytest.mark.parametrize("alg", ALGS)
def test_client_credentials_in_the_form(shared_target: SharedTarget, alg: str) -> None:
    target = shared_target(alg)
    device = new_device(target)
    assert device.secret is not None
    before = time.time()
    response = request_token(
        target,
        {
            "grant_type": "client_credentials",
            "client_id": device.id,
            "client_secret": device.secret,
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == DEFAULT_SCOPE
    token = body["access_token"]
    header, claims = header_of(token), claims_of(token)
    assert header == {"alg": alg, "typ": "at+jwt", "kid": server_key(target).kid}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["client_id"] == device.id
    assert claims["scope"] == DEFAULT_SCOPE
    assert int(before) <= claims["iat"] == claims["nbf"] <= time.time()
    assert claims["exp"] == claims["iat"] + 3600
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert get(target, "/api/data", token).json() == {"device_id": device.id, "data": "ok"}


def test_each_token_has_its_own_jti(shared_target: SharedTarget) -> None:
    target = shared_target("HS256")
    device = new_device(target)
    jtis = {claims_of(client_token(target, device))["jti"] for _ in range(5)}
    assert len(jtis) == 5


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_client_credentials_by_http_basic(shared_target: SharedTarget, alg: str) -> None:
    target = shared_target(alg)
    device = new_device(target)
    assert device.secret is not None
    response = request_token(
        target, {"grant_type": "client_credentials"}, headers=_basic(device.id, device.secret)
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert claims_of(response.json()["access_token"])["sub"] == device.id


def test_http_basic_form_encodes_its_parts(shared_target: SharedTarget) -> None:
    """An id with ':' and a secret with ':', '%' and '+' survive RFC 6749's encoding in Basic."""
    target = shared_target("HS256")
    device = Device(unique_id("basic:odd"), "pa:ss%word/with+odd=chars and spaces")
    assert register(target, [{"id": device.id, "secret": device.secret}]).status_code == 201
    assert device.secret is not None
    response = request_token(
        target, {"grant_type": "client_credentials"}, headers=_basic(device.id, device.secret)
    )
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["sub"] == device.id


def test_both_client_authentication_methods_at_once_is_invalid_request(
    shared_target: SharedTarget,
) -> None:
    target = shared_target("HS256")
    device = new_device(target)
    assert device.secret is not None
    response = request_token(
        target,
        {
            "grant_type": "client_credentials",
            "client_id": device.id,
            "client_secret": device.secret,
        },
        headers=_basic(device.id, device.secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("key_alg", ASSERTION_ALGS)
@pytest.mark.parametrize("alg", ["ES256", "HS256"])
def test_jwt_bearer_with_a_device_signed_assertion(
    shared_target: SharedTarget, alg: str, key_alg: str
) -> None:
    target = shared_target(alg)
    device = new_device(target, key_alg=key_alg, secret=False)
    response = request_token(target, _bearer_grant(device_assertion(device)))
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["scope"] == DEFAULT_SCOPE
    claims = claims_of(body["access_token"])
    assert claims["sub"] == device.id
    assert header_of(body["access_token"])["alg"] == alg
    assert send_reading(target, device.id, body["access_token"], seq=1).status_code == 202


def test_assertion_aud_may_be_a_list_holding_the_issuer(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    device = new_device(target, key_alg="ES256", secret=False)
    assertion = device_assertion(device, aud=["urn:other", ISSUER])
    assert request_token(target, _bearer_grant(assertion)).status_code == 200


def test_assertion_lifetime_of_exactly_600_s_is_allowed(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    device = new_device(target, key_alg="ES256", secret=False)
    now = int(time.time())
    assertion = device_assertion(device, iat=now, exp=now + 600)
    assert request_token(target, _bearer_grant(assertion)).status_code == 200


def test_replayed_assertion_jti_is_invalid_grant(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    device = new_device(target, key_alg="ES256", secret=False)
    assertion = device_assertion(device)
    assert request_token(target, _bearer_grant(assertion)).status_code == 200
    assert_oauth_error(request_token(target, _bearer_grant(assertion)), 400, "invalid_grant")
    # The same jti in a fresh, differently timed assertion is a replay too.
    again = device_assertion(device, jti=claims_of(assertion)["jti"], iat=int(time.time()) - 1)
    assert_oauth_error(request_token(target, _bearer_grant(again)), 400, "invalid_grant")


def test_jti_is_spent_per_device(shared_target: SharedTarget) -> None:
    """Two devices choosing the same jti do not lock each other out."""
    target = shared_target("ES256")
    first = new_device(target, key_alg="ES256", secret=False)
    second = new_device(target, key_alg="EdDSA", secret=False)
    for device in (first, second):
        assertion = device_assertion(device, jti="shared-jti-value")
        assert request_token(target, _bearer_grant(assertion)).status_code == 200


def _wrong_key(device: Device) -> str:
    assert device.alg is not None
    impostor = Device(device.id, key=generate_key(device.alg), alg=device.alg)
    return device_assertion(impostor)


def _unsigned(device: Device) -> str:
    """The device's own claims under ``alg: none`` with no signature."""
    claims = device_assertion(device).split(".")[1]
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{claims}."


# Assertions the token endpoint must refuse with invalid_grant; each breaks one RFC 7523 rule.
BAD_ASSERTIONS: list[tuple[str, Callable[[Device], str]]] = [
    (
        "lifetime-over-600-s",
        lambda d: device_assertion(d, exp=int(time.time()) + 601, iat=int(time.time())),
    ),
    ("aud-wrong", lambda d: device_assertion(d, aud="urn:someone:else")),
    ("aud-is-the-access-token-audience", lambda d: device_assertion(d, aud=AUDIENCE)),
    ("aud-missing", lambda d: device_assertion(d, drop=("aud",))),
    (
        "expired",
        lambda d: device_assertion(d, iat=int(time.time()) - 400, exp=int(time.time()) - 100),
    ),
    (
        "iat-in-the-future",
        lambda d: device_assertion(d, iat=int(time.time()) + 300, exp=int(time.time()) + 400),
    ),
    ("nbf-in-the-future", lambda d: device_assertion(d, nbf=int(time.time()) + 300)),
    ("exp-missing", lambda d: device_assertion(d, drop=("exp",))),
    ("iat-missing", lambda d: device_assertion(d, drop=("iat",))),
    ("jti-missing", lambda d: device_assertion(d, drop=("jti",))),
    ("jti-empty", lambda d: device_assertion(d, jti="")),
    ("jti-not-a-string", lambda d: device_assertion(d, jti=12345)),
    ("iss-not-sub", lambda d: device_assertion(d, sub="someone-else")),
    ("iss-another-device", lambda d: device_assertion(d, iss="x", sub="x")),
    ("signed-by-another-key", _wrong_key),
    # Signed by the device's own key, but naming an algorithm it did not register.
    ("alg-not-the-registered-one", lambda d: device_assertion(d, header={"alg": "ES384"})),
    ("alg-none", _unsigned),
    ("header-jwk", lambda d: device_assertion(d, header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}})),
    ("header-jku", lambda d: device_assertion(d, header={"jku": "https://evil.example/jwks"})),
    ("header-x5u", lambda d: device_assertion(d, header={"x5u": "https://evil.example/c.pem"})),
    ("header-x5c", lambda d: device_assertion(d, header={"x5c": ["MIIBszCCAVmgAwIBAgIU"]})),
    ("header-crit", lambda d: device_assertion(d, header={"crit": ["exp"]})),
    ("malformed", lambda d: "not.a.jwt"),
    # Regression: a huge integer exp was a 500, and an iat of NaN slipped past the 600 s bound.
    ("exp-huge-int", lambda d: device_assertion(d, exp=10**400)),
    (
        "iat-NaN-exp-far",
        lambda d: device_assertion(d, iat=float("nan"), exp=int(time.time()) + 10**8),
    ),
    ("exp-Infinity", lambda d: device_assertion(d, exp=float("inf"))),
]


@pytest.fixture(scope="module")
def assertion_device(shared_target: SharedTarget) -> tuple[EmbeddedTarget, Device]:
    target = shared_target("ES256")
    return target, new_device(target, key_alg="ES256", secret=False)


@pytest.mark.parametrize(
    "build", [b for _, b in BAD_ASSERTIONS], ids=[n for n, _ in BAD_ASSERTIONS]
)
def test_bad_assertion_is_invalid_grant(
    assertion_device: tuple[EmbeddedTarget, Device], build: Callable[[Device], str]
) -> None:
    target, device = assertion_device
    assert_oauth_error(request_token(target, _bearer_grant(build(device))), 400, "invalid_grant")


def test_assertion_for_a_secret_only_device_is_invalid_grant(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    holder = new_device(target, key_alg="ES256", secret=False)
    secret_only = new_device(target)
    forged = device_assertion(Device(secret_only.id, key=holder.key, alg="ES256"))
    assert_oauth_error(request_token(target, _bearer_grant(forged)), 400, "invalid_grant")


def test_jwt_bearer_refusals_do_not_tell_which_devices_exist(shared_target: SharedTarget) -> None:
    """Issue 10 item 7: a key device ("alg does not match", "signature does not verify"), a
    secret-only device and an unknown id ("no active device ...") got different descriptions."""
    target = shared_target("ES256")
    holder = new_device(target, key_alg="ES256", secret=False)
    eddsa = new_device(target, key_alg="EdDSA", secret=False)
    secret_only = new_device(target)
    stranger = generate_key("ES256")
    attempts = {
        "key-device-wrong-key": Device(holder.id, key=stranger, alg="ES256"),
        "key-device-other-alg": Device(eddsa.id, key=stranger, alg="ES256"),
        "secret-only-device": Device(secret_only.id, key=stranger, alg="ES256"),
        "unknown-id": Device(unique_id("nobody"), key=stranger, alg="ES256"),
    }
    answers = {}
    for name, impostor in attempts.items():
        response = request_token(target, _bearer_grant(device_assertion(impostor)))
        answers[name] = (response.status_code, response.json())
    assert len(set(map(repr, answers.values()))) == 1, answers
    status, body = answers["unknown-id"]
    assert status == 400 and body["error"] == "invalid_grant"


def _client_form(device: Device, **changes: str | None) -> dict[str, str]:
    """A client_credentials form for ``device``; a change to None removes that parameter."""
    form = {
        "grant_type": "client_credentials",
        "client_id": device.id,
        "client_secret": device.secret or "",
    }
    for name, value in changes.items():
        if value is None:
            form.pop(name)
        else:
            form[name] = value
    return form


FormOf = Callable[[Device], dict[str, str]]
# (id, form, status, RFC 6749 §5.2 error)
TOKEN_ERRORS: list[tuple[str, FormOf, int, str]] = [
    ("wrong-secret", lambda d: _client_form(d, client_secret="x" * 30), 401, "invalid_client"),
    (
        "unknown-client",
        lambda d: _client_form(d, client_id="no-such-device"),
        401,
        "invalid_client",
    ),
    ("secret-missing", lambda d: _client_form(d, client_secret=None), 401, "invalid_client"),
    ("secret-empty", lambda d: _client_form(d, client_secret=""), 401, "invalid_client"),
    (
        "no-client",
        lambda d: _client_form(d, client_id=None, client_secret=None),
        401,
        "invalid_client",
    ),
    (
        "password-grant",
        lambda d: {"grant_type": "password", "username": d.id},
        400,
        "unsupported_grant_type",
    ),
    (
        "code-grant",
        lambda d: {"grant_type": "authorization_code", "code": "x"},
        400,
        "unsupported_grant_type",
    ),
    ("grant-missing", lambda d: _client_form(d, grant_type=None), 400, "invalid_request"),
    ("grant-empty", lambda d: _client_form(d, grant_type=""), 400, "invalid_request"),
    ("assertion-missing", lambda d: {"grant_type": JWT_BEARER}, 400, "invalid_request"),
    ("assertion-empty", lambda d: _bearer_grant(""), 400, "invalid_request"),
    ("scope-beyond-the-devices", lambda d: _client_form(d, scope="admin"), 400, "invalid_scope"),
    ("scope-empty", lambda d: _client_form(d, scope=""), 400, "invalid_scope"),
]


@pytest.mark.parametrize(
    ("form_of", "status", "error"),
    [case[1:] for case in TOKEN_ERRORS],
    ids=[case[0] for case in TOKEN_ERRORS],
)
def test_token_errors_follow_rfc_6749(
    shared_target: SharedTarget,
    form_of: Callable[[Device], dict[str, str]],
    status: int,
    error: str,
) -> None:
    target = shared_target("HS256")
    device = new_device(target)
    response = request_token(target, form_of(device))
    assert_oauth_error(response, status, error)
    assert "access_token" not in response.json()


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"no-such-device:whatever-secret").decode(),
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),
        "Basic \xe9t\xe9",  # regression: non-ASCII here was an uncaught ValueError, a 500
        "Bearer some.access.token",
    ],
    ids=["unknown", "not-base64", "no-colon", "not-utf8", "not-ascii", "bearer-scheme"],
)
def test_bad_client_authentication_header_is_invalid_client(
    shared_target: SharedTarget, authorization: str
) -> None:
    target = shared_target("HS256")
    response = request_token(
        target,
        {"grant_type": "client_credentials"},
        headers={"Authorization": authorization.encode("latin-1")},
    )
    assert_oauth_error(response, 401, "invalid_client")
    if authorization.startswith("Basic"):  # RFC 6749 §5.2: challenge the scheme the client used
        assert response.headers["WWW-Authenticate"] == 'Basic realm="fleetbench"'


def test_requested_scope_narrows_the_token(shared_target: SharedTarget) -> None:
    target = shared_target("HS256")
    device = new_device(target)
    token = client_token(target, device, scope="telemetry:write")
    assert claims_of(token)["scope"] == "telemetry:write"
    assert send_reading(target, device.id, token, seq=1).status_code == 202
    assert get(target, f"/devices/{device.id}/config", token).status_code == 403


def test_a_narrowly_registered_device_gets_only_its_scope(shared_target: SharedTarget) -> None:
    target = shared_target("HS256")
    device = new_device(target, scope="config:read")
    token = client_token(target, device)
    assert claims_of(token)["scope"] == "config:read"
    assert_oauth_error(
        request_token(
            target,
            {
                "grant_type": "client_credentials",
                "client_id": device.id,
                "client_secret": device.secret or "",
                "scope": "telemetry:write",
            },
        ),
        400,
        "invalid_scope",
    )


@pytest.mark.parametrize("how", ["revoke", "delete"])
def test_no_new_tokens_for_a_revoked_or_deleted_device(
    shared_target: SharedTarget, how: str
) -> None:
    target = shared_target("ES256")
    device = new_device(target, key_alg="ES256")
    client_token(target, device)
    if how == "revoke":
        url, method = f"{target.url}/admin/devices/{device.id}/revoke", "POST"
    else:
        url, method = f"{target.url}/admin/devices/{device.id}", "DELETE"
    assert requests.request(method, url, headers=admin_headers(target), timeout=TIMEOUT_S).ok
    assert device.secret is not None
    assert_oauth_error(
        request_token(
            target,
            {
                "grant_type": "client_credentials",
                "client_id": device.id,
                "client_secret": device.secret,
            },
        ),
        401,
        "invalid_client",
    )
    assert_oauth_error(
        request_token(target, _bearer_grant(device_assertion(device))), 400, "invalid_grant"
    )


def test_token_endpoint_answers_only_post(shared_target: SharedTarget) -> None:
    target = shared_target("HS256")
    response = requests.get(f"{target.url}/auth/token", timeout=TIMEOUT_S)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_server_metadata_names_the_issuer_assertions_must_carry(
    shared_target: SharedTarget,
) -> None:
    target = shared_target("EdDSA")
    response = requests.get(
        f"{target.url}/.well-known/oauth-authorization-server", timeout=TIMEOUT_S
    )
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == f"{target.url}/auth/token"
    assert meta["jwks_uri"] == f"{target.url}/.well-known/jwks.json"
    assert set(meta["grant_types_supported"]) == {"client_credentials", JWT_BEARER}
    assert meta["access_token_signing_alg"] == "EdDSA"
    assert meta["audience"] == AUDIENCE


def test_server_metadata_urls_never_come_from_the_host_header(
    shared_target: SharedTarget, start_target: StartTarget
) -> None:
    """Issue 10 item 11: the endpoint URLs were built from the Host header the client sent."""
    url = f"{shared_target('EdDSA').url}/.well-known/oauth-authorization-server"
    meta = requests.get(url, headers={"Host": "evil.example"}, timeout=TIMEOUT_S).json()
    assert "evil.example" not in json.dumps(meta)
    assert meta["token_endpoint"] == url.replace(
        "/.well-known/oauth-authorization-server", "/auth/token"
    )
    issuer = start_target("HS256", issuer="https://fleet.example/")
    meta = requests.get(
        f"{issuer.url}/.well-known/oauth-authorization-server",
        headers={"Host": "evil.example"},
        timeout=TIMEOUT_S,
    ).json()
    assert meta["token_endpoint"] == "https://fleet.example/auth/token"
    assert meta["jwks_uri"] == "https://fleet.example/.well-known/jwks.json"
    proxied = start_target("HS256", public_url="https://api.fleet.example/v1/")
    meta = requests.get(
        f"{proxied.url}/.well-known/oauth-authorization-server", timeout=TIMEOUT_S
    ).json()
    assert meta["token_endpoint"] == "https://api.fleet.example/v1/auth/token"


def test_issuer_and_audience_flags_change_tokens_and_assertions(
    start_target: StartTarget,
) -> None:
    target = start_target("HS256", issuer="https://fleet.example", audience="urn:fleet:api")
    device = new_device(target, key_alg="EdDSA")
    token = client_token(target, device)
    claims = claims_of(token)
    assert (claims["iss"], claims["aud"]) == ("https://fleet.example", "urn:fleet:api")
    assert get(target, "/api/data", token).status_code == 200
    # Assertions must now name the new issuer, and the default one is refused.
    good = device_assertion(device, aud="https://fleet.example")
    assert request_token(target, _bearer_grant(good)).status_code == 200
    assert_oauth_error(
        request_token(target, _bearer_grant(device_assertion(device))), 400, "invalid_grant"
    )
