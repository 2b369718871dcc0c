"""The profile's request/classify layer on real tokens (real keys, real PyJWT)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import jwt
import msgspec
import pytest

from sim.profiles import load_profile
from sim.profiles.http import (
    classify,
    endpoint_request,
    judge_answer,
    mint_token,
    present,
    read_token,
    render,
    token_request,
)
from sim.profiles.model import Present
from target.jose.vocabulary import generate_private_key

SECRET = "a-shared-secret-of-at-least-32-bytes!"


def test_render_keeps_numbers_and_fills_strings() -> None:
    values = {"device_id": "d-1", "now": 1000, "ttl": 60, "n": 7}
    claims = render({"device_id": "{device_id}", "exp": "{now + ttl}", "nbf": "{now - 5}"}, values)
    assert claims == {"device_id": "d-1", "exp": 1060, "nbf": 995}
    assert render("/devices/{device_id}/x", values) == "/devices/d-1/x"
    assert render("device-{n:05d}", values) == "device-00007"


def test_seed_express_mints_hs256_and_presents_the_raw_token() -> None:
    profile = load_profile("seed-express", {"JWT_SECRET": SECRET})
    now = int(time.time())
    token = mint_token(profile, SECRET, {"device_id": "device-00001", "now": now, "ttl": 30})
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims == {"device_id": "device-00001", "exp": now + 30}
    request = endpoint_request(profile, profile.endpoints[0], {"device_id": "device-00001"}, token)
    assert (request.method, request.path, request.body) == ("GET", "/api/data", None)
    assert request.headers == {"Authorization": token}
    assert SECRET not in repr(request)


def test_minted_es256_with_a_private_key() -> None:
    profile = load_profile("seed-express", {"JWT_SECRET": SECRET})
    profile = msgspec.structs.replace(
        profile, token=msgspec.structs.replace(profile.token, alg="ES256")
    )
    key = generate_private_key("ES256")
    token = mint_token(profile, key, {"device_id": "d", "now": 100, "ttl": 5})
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    decoded = jwt.decode(
        token, key.public_key(), algorithms=["ES256"], options={"verify_exp": False}
    )
    assert decoded["exp"] == 105


def test_fleetbench_token_request_is_the_oauth_form() -> None:
    profile = load_profile("fleetbench", {})
    values = {"device_id": "dev-1", "secret": "s e/cret", "assertion": "a.b.c"}
    request = token_request(profile, values, assertion=False)
    assert (request.method, request.path) == ("POST", "/auth/token")
    assert request.body is not None
    assert parse_qs(request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["dev-1"],
        "client_secret": ["s e/cret"],
    }
    signed = token_request(profile, values, assertion=True)
    assert signed.body is not None
    assert parse_qs(signed.body.decode())["assertion"] == ["a.b.c"]
    assert "s e/cret" not in repr(request)


def test_read_token_from_exp_or_expires_in_or_opaque() -> None:
    profile = load_profile("fleetbench", {})
    now = int(time.time())
    token = jwt.encode({"exp": now + 60, "iat": now}, SECRET, algorithm="HS256")
    answer = read_token(profile, {}, {"access_token": token}, now)
    assert answer is not None and (answer.exp, answer.iat, answer.alg) == (now + 60, now, "HS256")
    opaque = msgspec.structs.replace(
        profile,
        token=msgspec.structs.replace(
            profile.token, token_field="token", expires_in_field="expires_in"
        ),
    )
    answer = read_token(opaque, {}, {"token": "not-a-jwt", "expires_in": 30}, now)
    assert answer is not None and (answer.exp, answer.alg) == (now + 30, "opaque")
    assert read_token(profile, {}, {"access_token": "not-a-jwt"}, now) is None
    assert read_token(profile, {}, {"nothing": 1}, now) is None


def test_query_presentation() -> None:
    profile = load_profile("fleetbench", {})
    profile = msgspec.structs.replace(profile, present=Present(query="access_token"))
    assert present(profile, "a.b+c", "/x?y=1") == ({}, "/x?y=1&access_token=a.b%2Bc")


def test_classify_by_statuses_and_rfc6750() -> None:
    seed = load_profile("seed-express", {"JWT_SECRET": SECRET})
    assert classify(seed, 401, {}) == "missing"
    assert classify(seed, 403, {}) == "invalid"
    assert classify(seed, 404, {}) == "http_404"
    ours = load_profile("fleetbench", {})
    challenge = 'Bearer error="invalid_token", error_description="expired: token has expired"'
    assert classify(ours, 401, {"www-authenticate": challenge}) == "expired"
    assert classify(ours, 401, {"www-authenticate": 'Bearer realm="fleetbench"'}) == "missing"


@pytest.mark.parametrize(
    ("status", "reason", "exp_offset", "outcome"),
    [
        (200, "http_200", 60, "ok"),
        (403, "invalid", -5, "rejected_as_expected"),  # past exp: a 403 is the expected refusal
        (403, "invalid", 60, "refused_valid"),  # valid by its own claims: refused wrongly
        (200, "http_200", -30, "accepted_invalid"),  # leeway 0: accepted long past exp
        (401, "missing", -5, "refused_valid"),  # we sent it; the API says none came
        (500, "http_500", 60, "server_error"),
        (0, "http_0", 60, "transport_error"),
    ],
)
def test_judging_a_held_token_on_a_403_for_everything_api(
    status: int, reason: str, exp_offset: int, outcome: str
) -> None:
    seed = load_profile("seed-express", {"JWT_SECRET": SECRET})
    now = time.time()
    judged = judge_answer(seed, status, reason, exp=now + exp_offset, now=now, leeway_s=0)
    assert judged == outcome


def test_a_token_body_is_json_when_the_profile_says_json() -> None:
    profile = load_profile("fleetbench", {})
    token = msgspec.structs.replace(
        profile.token, form=None, assertion_form=None, json={"id": "{device_id}", "pw": "{secret}"}
    )
    request = token_request(
        msgspec.structs.replace(profile, token=token),
        {"device_id": "d", "secret": "p"},
        assertion=False,
    )
    assert request.headers == {"Content-Type": "application/json"}
    assert request.body is not None and json.loads(request.body) == {"id": "d", "pw": "p"}
