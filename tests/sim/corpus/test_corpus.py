from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections import Counter

import jwt
import pytest
import requests

from sim.corpus import (
    CASES,
    TOKEN_CASES,
    ForgeContext,
    cases_for,
    common_secrets,
    find_common_secret,
)
from sim.fleet.admin import register_fleet
from sim.fleet.client import TargetClient
from sim.fleet.model import make_fleet
from sim.outcomes import refusal_reason
from tests.conftest import StartTarget


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_every_case_is_refused_as_described(start_target: StartTarget, alg: str) -> None:
    target = start_target(alg)
    client = TargetClient(target.url, target.admin_key)
    fleet = make_fleet(2, "secret")
    register_fleet(client, fleet)
    me, other = fleet.devices
    token = requests.post(
        f"{target.url}/auth/token",
        data={"grant_type": "client_credentials", "client_id": me.id, "client_secret": me.secret},
        timeout=10,
    ).json()["access_token"]
    context = ForgeContext(token, alg, me.id, other.id)
    assert len(CASES) >= 10
    for case in cases_for(device_path=True):
        forged = case.forge(context)
        headers = {} if forged.authorization is None else {"Authorization": forged.authorization}
        response = requests.get(
            f"{target.url}/devices/{forged.device_id}/config", headers=headers, timeout=10
        )
        reason = refusal_reason(response.status_code, response.headers.get("www-authenticate"))
        assert response.status_code == case.expected_status, case.name
        assert reason in case.expected_reasons, (case.name, reason)


def test_families_have_several_cases_and_names_are_unique() -> None:
    families = Counter([case.family for case in CASES] + [case.family for case in TOKEN_CASES])
    for family in ("format", "algorithm", "signature", "key_header", "claims", "token_endpoint"):
        assert families[family] >= 5, family
    assert families["size"] == 2
    names = [case.name for case in CASES] + [case.name for case in TOKEN_CASES]
    assert len(names) == len(set(names))
    assert all(case.description and "\n" not in case.description for case in CASES)


def test_the_rejection_scenario_gets_only_cases_it_can_forge() -> None:
    for device_path in (True, False):
        for case in cases_for(device_path):
            assert case.needs <= {"device_path"}
    assert "other_device" not in {case.name for case in cases_for(device_path=False)}
    assert "oversized_1mib" not in {case.name for case in cases_for(device_path=True)}


def test_common_secrets_are_data_and_find_a_weak_hmac_secret() -> None:
    assert 300 <= len(common_secrets()) <= 1000
    claims = {"sub": "d", "exp": 2_000_000_000}
    signing_input = ".".join(_b64(json.dumps(part).encode()) for part in ({"alg": "HS256"}, claims))
    mac = hmac.digest(b"your-256-bit-secret", signing_input.encode(), "sha256")
    weak = f"{signing_input}.{_b64(mac)}"
    index = find_common_secret(weak)
    assert index is not None and common_secrets()[index] == b"your-256-bit-secret"
    strong = jwt.encode(claims, secrets.token_bytes(64), algorithm="HS512")
    assert find_common_secret(strong) is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
