from __future__ import annotations

import pytest
import requests

from sim.corpus import CASES, ForgeContext
from sim.fleet import make_fleet
from sim.http import TargetClient
from sim.outcomes import refusal_reason
from sim.provision import register_fleet
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
    for case in CASES:
        forged = case.forge(context)
        headers = {} if forged.authorization is None else {"Authorization": forged.authorization}
        response = requests.get(
            f"{target.url}/devices/{forged.device_id}/config", headers=headers, timeout=10
        )
        reason = refusal_reason(response.status_code, response.headers.get("www-authenticate"))
        assert response.status_code == case.expected_status, case.name
        assert reason in case.expected_reasons, (case.name, reason)
