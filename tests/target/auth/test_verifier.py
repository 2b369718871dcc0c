"""Every verification rule (RFC 8725, RFC 9068 profile), each broken by a forged token over HTTP.

Most forgeries are signed with the target's real key (read from its database), so each one is
refused for the rule it breaks and not merely for a bad signature. Every refusal must be a 401
``invalid_token`` whose ``error_description`` names the class.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sim.run.embedded import EmbeddedTarget
from target.auth.verifier import Verifier
from target.errors import ExpiredTokenError, RevokedError, SignatureError
from target.jose.algorithms import ALGORITHMS
from tests.conftest import StartTarget
from tests.target.conftest import SharedTarget
from tests.target.helpers import (
    ALGS,
    ASYMMETRIC_ALGS,
    AUDIENCE,
    ISSUER,
    TIMEOUT_S,
    Device,
    ServerKey,
    access_claims,
    assert_no_credentials,
    assert_refused,
    b64url,
    b64url_json,
    bearer,
    client_token,
    compact,
    forge,
    generate_key,
    get,
    new_device,
    server_key,
    sign,
    wait_until,
)


@dataclass(frozen=True)
class Forger:
    """A target, its real signing key, and one registered device to forge tokens for."""

    target: EmbeddedTarget
    key: ServerKey
    device: Device

    def token(self, *, header: dict[str, Any] | None = None, **changes: Any) -> str:
        """A token for the device, signed with the real key, with the header and claims changed."""
        return forge(self.key, self.device.id, header=header, **changes)

    def signed(self, header_segment: str, payload_segment: str) -> str:
        """Sign the two segments exactly as given (even when they are not valid base64url)."""
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        signature = sign(self.key.alg, self.key.private, signing_input)
        return f"{header_segment}.{payload_segment}.{b64url(signature)}"

    def header_segment(self, **changes: Any) -> str:
        header = {"alg": self.key.alg, "typ": "at+jwt", "kid": self.key.kid, **changes}
        return b64url_json(header)

    def payload_segment(self, **changes: Any) -> str:
        return b64url_json(access_claims(self.device.id, **changes))


@pytest.fixture(scope="module", params=ALGS)
def forger(request: pytest.FixtureRequest, shared_target: SharedTarget) -> Forger:
    target = shared_target(request.param)
    return Forger(target, server_key(target), new_device(target))


Build = Callable[[Forger], str]


def _none_alg(name: str, signature: str) -> Build:
    def build(f: Forger) -> str:
        header = b64url_json({"alg": name, "typ": "at+jwt", "kid": f.key.kid})
        return f"{header}.{f.payload_segment()}.{signature}"

    return build


def _other_hmac_alg(f: Forger) -> str:
    """A header naming an algorithm the target does not use, keyed with its own HMAC secret if
    it has one (the same bytes under another hash), else with a random one."""
    alg = "HS512" if f.key.alg == "HS256" else "HS256"
    secret = f.key.private if isinstance(f.key.private, bytes) else secrets.token_bytes(32)
    return compact(
        {"alg": alg, "typ": "at+jwt", "kid": f.key.kid}, access_claims(f.device.id), alg, secret
    )


def _tampered_payload(f: Forger) -> str:
    token = f.token()
    header, _, signature = token.split(".")
    return f"{header}.{f.payload_segment(scope='telemetry:write config:read admin')}.{signature}"


def _tampered_signature(f: Forger) -> str:
    token = f.token()
    header, payload, signature = token.split(".")
    raw = bytearray(jwt.utils.base64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def _stripped_signature(f: Forger) -> str:
    header, payload, _ = f.token().split(".")
    return f"{header}.{payload}."


_OTHER_KEYS: dict[str, Any] = {}


def _other_key(alg: str) -> Any:
    """A key of the right type that is not the target's (made once per algorithm)."""
    if alg not in _OTHER_KEYS:
        _OTHER_KEYS[alg] = generate_key(alg)
    return _OTHER_KEYS[alg]


def _duplicate_alg_header(f: Forger) -> str:
    """``alg`` twice: a parser keeping the first would see none, one keeping the last the real
    algorithm. The target must refuse the ambiguity itself."""
    header = f'{{"alg":"none","alg":"{f.key.alg}","typ":"at+jwt","kid":"{f.key.kid}"}}'
    return f.signed(b64url(header.encode()), f.payload_segment())


def _oversized(f: Forger) -> str:
    """Correctly signed and otherwise valid, but longer than 8 KiB."""
    return f.token(padding="x" * 8500)


# (id, token builder, expected class) — each a token the target must refuse.
REFUSED: list[tuple[str, Build, str]] = [
    *[
        (f"alg-{n}-unsigned", _none_alg(n, ""), "signature")
        for n in ("none", "None", "NONE", "nOnE")
    ],
    *[
        (f"alg-{n}-signed", _none_alg(n, b64url(secrets.token_bytes(32))), "signature")
        for n in ("none", "None", "NONE", "nOnE")
    ],
    (
        "alg-missing",
        lambda f: f.signed(b64url_json({"typ": "at+jwt", "kid": f.key.kid}), f.payload_segment()),
        "signature",
    ),
    (
        "alg-not-a-string",
        lambda f: f.signed(f.header_segment(alg=["ES256"]), f.payload_segment()),
        "signature",
    ),
    ("alg-other-than-the-keys", _other_hmac_alg, "signature"),
    ("kid-unknown", lambda f: f.token(header={"kid": "no-such-kid"}), "signature"),
    ("kid-int", lambda f: f.token(header={"kid": 1}), "signature"),
    ("kid-null", lambda f: f.token(header={"kid": None}), "signature"),
    ("kid-list", lambda f: f.token(header={"kid": [f.key.kid]}), "signature"),
    ("kid-missing", lambda f: f.token(drop_header=("kid",)), "signature"),
    ("kid-path-traversal", lambda f: f.token(header={"kid": "../../etc/passwd"}), "signature"),
    ("jku", lambda f: f.token(header={"jku": "https://evil.example/jwks.json"}), "signature"),
    ("x5u", lambda f: f.token(header={"x5u": "https://evil.example/cert.pem"}), "signature"),
    ("jwk", lambda f: f.token(header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}), "signature"),
    ("x5c", lambda f: f.token(header={"x5c": ["MIIBszCCAVmgAwIBAgIU"]}), "signature"),
    ("crit", lambda f: f.token(header={"crit": ["exp"]}), "signature"),
    ("crit-extension", lambda f: f.token(header={"crit": ["x-fleet"], "x-fleet": 1}), "signature"),
    ("typ-JWT", lambda f: f.token(header={"typ": "JWT"}), "claims"),
    ("typ-missing", lambda f: f.token(drop_header=("typ",)), "claims"),
    ("typ-not-a-string", lambda f: f.token(header={"typ": ["at+jwt"]}), "claims"),
    (
        "expired",
        lambda f: f.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "expired",
    ),
    ("nbf-future", lambda f: f.token(nbf=int(time.time()) + 3600), "claims"),
    ("iat-future", lambda f: f.token(iat=int(time.time()) + 3600), "claims"),
    *[
        (f"missing-{name}", lambda f, name=name: f.token(drop_claims=(name,)), "claims")
        for name in ("exp", "iat", "iss", "aud", "sub")
    ],
    ("aud-wrong", lambda f: f.token(aud="urn:someone:else"), "claims"),
    ("aud-list-without-ours", lambda f: f.token(aud=["urn:a", "urn:b"]), "claims"),
    ("iss-wrong", lambda f: f.token(iss="https://evil.example"), "claims"),
    ("sub-empty", lambda f: f.token(sub=""), "claims"),
    ("sub-not-a-string", lambda f: f.token(sub=7), "claims"),
    ("sub-unknown-device", lambda f: f.token(sub="no-such-device"), "revoked"),
    ("exp-a-string", lambda f: f.token(exp="9999999999"), "claims"),
    ("exp-a-bool", lambda f: f.token(exp=True), "claims"),
    ("scope-not-a-string", lambda f: f.token(scope=["telemetry:write"]), "claims"),
    # Regression: an exp of NaN passed every comparison (the token never expired), and a huge
    # integer overflowed float() into a 500. json.dumps writes NaN and -Infinity as Python does.
    ("exp-NaN", lambda f: f.token(exp=float("nan")), "claims"),
    ("exp-huge-int", lambda f: f.token(exp=10**400), "claims"),
    ("iat-minus-Infinity", lambda f: f.token(iat=float("-inf")), "claims"),
    ("tampered-payload", _tampered_payload, "signature"),
    ("tampered-signature", _tampered_signature, "signature"),
    ("stripped-signature", _stripped_signature, "signature"),
    (
        "signature-of-other-key",
        lambda f: compact(
            {"alg": f.key.alg, "typ": "at+jwt", "kid": f.key.kid},
            access_claims(f.device.id),
            f.key.alg,
            _other_key(f.key.alg),
        ),
        "signature",
    ),
    # Non-base64url segments, correctly signed as they stand so only the encoding is wrong.
    (
        "header-plus-slash",
        lambda f: f.signed(f.header_segment()[:-2] + "+/", f.payload_segment()),
        "malformed",
    ),
    (
        "header-padded",
        lambda f: f.signed(f.header_segment() + "=", f.payload_segment()),
        "malformed",
    ),
    (
        "payload-padded",
        lambda f: f.signed(f.header_segment(), f.payload_segment() + "=="),
        "malformed",
    ),
    (
        "payload-star",
        lambda f: f.signed(f.header_segment(), f.payload_segment() + "*"),
        "malformed",
    ),
    ("payload-space", lambda f: f.signed(f.header_segment(), "eyJ z"), "malformed"),
    ("header-not-json", lambda f: f.signed(b64url(b"{alg"), f.payload_segment()), "malformed"),
    ("header-an-array", lambda f: f.signed(b64url(b"[1]"), f.payload_segment()), "malformed"),
    ("header-duplicate-alg", _duplicate_alg_header, "malformed"),
    ("payload-not-json", lambda f: f.signed(f.header_segment(), b64url(b"not json")), "malformed"),
    (
        "payload-not-utf8",
        lambda f: f.signed(f.header_segment(), b64url(b'{"sub":"\xff"}')),
        "malformed",
    ),
    (
        "payload-duplicate-sub",
        lambda f: f.signed(
            f.header_segment(),
            b64url(json.dumps(access_claims(f.device.id))[:-1].encode() + b',"sub":"other"}'),
        ),
        "malformed",
    ),
    ("two-segments", lambda f: ".".join(f.token().split(".")[:2]), "malformed"),
    ("four-segments", lambda f: f.token() + ".e30", "malformed"),
    ("empty-header", lambda f: "." + f.token().split(".", 1)[1], "malformed"),
    ("over-8-KiB", _oversized, "malformed"),
]


@pytest.mark.parametrize(
    ("build", "reason"), [(b, r) for _, b, r in REFUSED], ids=[name for name, _, _ in REFUSED]
)
def test_forged_token_is_refused_with_its_class(forger: Forger, build: Build, reason: str) -> None:
    response = get(forger.target, "/api/data", build(forger))
    assert_refused(response, reason)


# Tokens the same forger makes that the target must accept: proof that the forgeries above are
# refused for the one thing each changes, and that the rules are not stricter than stated.
ACCEPTED: list[tuple[str, Build]] = [
    ("as-minted", lambda f: f.token()),
    ("typ-media-type", lambda f: f.token(header={"typ": "application/at+jwt"})),
    ("typ-upper-case", lambda f: f.token(header={"typ": "AT+JWT"})),
    (
        "aud-list-with-ours",
        lambda f: f.token(aud=["urn:a", "urn:fleetbench:api"]),
    ),
    ("no-nbf", lambda f: f.token(drop_claims=("nbf",))),
    ("exp-within-leeway", lambda f: f.token(exp=int(time.time()) - 3)),
    ("iat-within-leeway", lambda f: f.token(iat=int(time.time()) + 3)),
    ("nbf-within-leeway", lambda f: f.token(nbf=int(time.time()) + 3)),
    ("float-times", lambda f: f.token(iat=time.time(), exp=time.time() + 60)),
    ("unknown-claims-ignored", lambda f: f.token(fleet={"rack": 3})),
    ("unknown-header-ignored", lambda f: f.token(header={"x-trace": "a"})),
]


@pytest.mark.parametrize("build", [b for _, b in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_well_formed_token_is_accepted(forger: Forger, build: Build) -> None:
    response = get(forger.target, "/api/data", build(forger))
    assert response.status_code == 200, response.text
    assert response.json() == {"device_id": forger.device.id, "data": "ok"}


def test_forged_token_refused_on_every_protected_route(forger: Forger) -> None:
    token = forge(forger.key, forger.device.id, header={"alg": "none"})
    device_path = f"/devices/{forger.device.id}"
    for method, path in (
        ("GET", "/api/data"),
        ("GET", f"{device_path}/config"),
        ("POST", f"{device_path}/telemetry"),
    ):
        response = requests.request(
            method,
            f"{forger.target.url}{path}",
            json={"seq": 1, "ts": 0},
            headers=bearer(token),
            timeout=TIMEOUT_S,
        )
        assert_refused(response, "signature")


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGS)
@pytest.mark.parametrize("form", ["pem", "pem-no-newline", "der", "jwk-json", "jwk-x"])
def test_hs256_keyed_with_the_public_key_is_refused(
    shared_target: SharedTarget, alg: str, form: str
) -> None:
    """The classic key-confusion attack: HMAC over the token with the public key as the secret."""
    target = shared_target(alg)
    device = new_device(target)
    jwks = requests.get(f"{target.url}/.well-known/jwks.json", timeout=TIMEOUT_S).json()
    (jwk,) = jwks["keys"]
    public = jwt.PyJWK(jwk).key
    secrets_by_form = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-x": jwk.get("x", jwk.get("n", "")).encode(),
    }
    secrets_by_form["pem-no-newline"] = secrets_by_form["pem"].rstrip(b"\n")
    header = b64url_json({"alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"]})
    payload = b64url_json(access_claims(device.id))
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(secrets_by_form[form], signing_input, hashlib.sha256).digest()
    response = get(target, "/api/data", f"{header}.{payload}.{b64url(mac)}")
    assert_refused(response, "signature")


def test_missing_authorization_gets_a_bare_challenge(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    response = get(target, "/api/data")
    assert_no_credentials(response)
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "JWT a.b.c", "Bearertoken"])
def test_another_scheme_gets_a_bare_challenge(shared_target: SharedTarget, value: str) -> None:
    target = shared_target("ES256")
    device = new_device(target)
    token = client_token(target, device)
    if value == "JWT a.b.c":
        value = f"JWT {token}"  # a good token under the wrong scheme is still no credentials
    response = requests.get(
        f"{target.url}/api/data", headers={"Authorization": value}, timeout=TIMEOUT_S
    )
    assert_no_credentials(response)


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer    ", "bearer"])
def test_bearer_without_a_token_is_malformed(shared_target: SharedTarget, value: str) -> None:
    target = shared_target("ES256")
    response = requests.get(
        f"{target.url}/api/data", headers={"Authorization": value}, timeout=TIMEOUT_S
    )
    assert_refused(response, "malformed")


def test_scheme_is_case_insensitive(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    device = new_device(target)
    token = client_token(target, device)
    response = requests.get(
        f"{target.url}/api/data", headers={"Authorization": f"BEARER {token}"}, timeout=TIMEOUT_S
    )
    assert response.status_code == 200


def test_revoked_devices_token_is_refused_as_revoked(forger: Forger) -> None:
    device = new_device(forger.target)
    token = client_token(forger.target, device)
    assert get(forger.target, "/api/data", token).status_code == 200
    revoked = requests.post(
        f"{forger.target.url}/admin/devices/{device.id}/revoke",
        headers={"Authorization": f"Bearer {forger.target.admin_key}"},
        timeout=TIMEOUT_S,
    )
    assert revoked.status_code == 200
    assert_refused(get(forger.target, "/api/data", token), "revoked")


def test_refusals_do_not_echo_the_token(forger: Forger) -> None:
    token = forge(forger.key, forger.device.id, header={"kid": "../../etc/passwd"})
    response = get(forger.target, "/api/data", token)
    assert response.status_code == 401
    for text in (response.text, response.headers["WWW-Authenticate"]):
        assert "passwd" not in text
        assert token.split(".")[0] not in text


def test_cached_token_is_still_refused_after_revocation_and_expiry(
    start_target: StartTarget,
) -> None:
    """With the verified-token cache on, a hit still checks the device and the clock."""
    target = start_target("HS256", token_ttl=2, leeway=0, verify_cache=1000)
    to_revoke, to_expire = new_device(target), new_device(target)
    revoked_token = client_token(target, to_revoke)
    expiring_token = client_token(target, to_expire)
    for _ in range(3):  # the second and third are cache hits
        assert get(target, "/api/data", revoked_token).status_code == 200
        assert get(target, "/api/data", expiring_token).status_code == 200
    requests.post(
        f"{target.url}/admin/devices/{to_revoke.id}/revoke",
        headers={"Authorization": f"Bearer {target.admin_key}"},
        timeout=TIMEOUT_S,
    ).raise_for_status()
    assert_refused(get(target, "/api/data", revoked_token), "revoked")
    assert wait_until(lambda: get(target, "/api/data", expiring_token).status_code == 401, 4.0)
    assert_refused(get(target, "/api/data", expiring_token), "expired")
    # A token from a fresh grant is of course fine.
    assert get(target, "/api/data", client_token(target, to_expire)).status_code == 200


def test_leeway_zero_refuses_a_token_just_expired(start_target: StartTarget) -> None:
    target = start_target("HS256", leeway=0)
    key = server_key(target)
    device = new_device(target)
    now = int(time.time())
    assert_refused(get(target, "/api/data", forge(key, device.id, exp=now - 1)), "expired")
    assert_refused(get(target, "/api/data", forge(key, device.id, iat=now + 5)), "claims")
    assert get(target, "/api/data", forge(key, device.id, exp=now + 30)).status_code == 200


def _es256_verifier(*keys: Any, active: set[str] | None = None, cache_size: int = 0) -> Verifier:
    """A verifier of ES256 tokens signed with ``keys``, for the devices in ``active``."""
    devices = {"device-1"} if active is None else active
    return Verifier(
        {key.kid: key for key in keys},
        algorithms=frozenset({"ES256"}),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_s=0,
        is_active=lambda sub: sub in devices,
        cache_size=cache_size,
    )


@pytest.mark.parametrize("cache_size", [0, 100])
def test_a_header_seen_before_does_not_skip_the_signature_check(cache_size: int) -> None:
    """The verifier remembers which key a header segment names; a token that reuses a good
    header with another payload or signature must still be checked in full."""
    spec = ALGORITHMS["ES256"]
    signing = spec.make_key(spec.generate())
    key = ServerKey(signing.kid, "ES256", signing.private)
    verifier = _es256_verifier(signing, active={"device-1", "device-2"}, cache_size=cache_size)
    good = forge(key, "device-1")
    assert verifier.verify(good).sub == "device-1"
    assert verifier.verify(good).sub == "device-1"  # a cache hit when the cache is on
    header, _, signature = good.split(".")
    swapped = f"{header}.{b64url_json(access_claims('device-2'))}.{signature}"
    with pytest.raises(SignatureError):
        verifier.verify(swapped)
    with pytest.raises(SignatureError):
        verifier.verify(f"{header}.{good.split('.')[1]}.{b64url(bytes(64))}")
    assert verifier.verify(forge(key, "device-2")).sub == "device-2"


def test_a_token_seen_before_is_refused_once_its_key_leaves_the_ring() -> None:
    """The verifier keeps tokens it has taken apart, with their key's check: when the ring
    changes (a key retired, or its kid bound to another key), none of them may verify on it."""
    spec = ALGORITHMS["ES256"]
    signing, other = (spec.make_key(spec.generate()) for _ in range(2))
    good = forge(ServerKey(signing.kid, "ES256", signing.private), "device-1")
    verifier = _es256_verifier(signing, other)
    for _ in range(2):  # the second one is taken from what the first left behind
        assert verifier.verify(good).sub == "device-1"

    verifier.set_keys({other.kid: other})  # retired
    with pytest.raises(SignatureError, match="unknown kid"):
        verifier.verify(good)

    verifier.set_keys({signing.kid: signing})
    assert verifier.verify(good).sub == "device-1"
    impostor = spec.make_key(spec.generate(), kid=signing.kid)  # the same kid, another key
    verifier.set_keys({signing.kid: impostor})
    with pytest.raises(SignatureError, match="does not verify"):
        verifier.verify(good)


def test_a_token_seen_before_is_still_checked_for_time_and_device() -> None:
    """Only the parsing is kept: a token that verified a moment ago is refused once it has
    expired or its device is no longer active."""
    spec = ALGORITHMS["ES256"]
    signing = spec.make_key(spec.generate())
    active = {"device-1"}
    verifier = _es256_verifier(signing, active=active)
    now = time.time()
    token = forge(ServerKey(signing.kid, "ES256", signing.private), "device-1", exp=int(now) + 60)
    assert verifier.verify(token, now).sub == "device-1"
    with pytest.raises(ExpiredTokenError):
        verifier.verify(token, now + 61)
    active.clear()
    with pytest.raises(RevokedError):
        verifier.verify(token, now)
