from __future__ import annotations

import pytest

from sim.errors import AdminKeyRejected, FleetMismatch, TargetUnreachable
from sim.fleet import make_fleet
from sim.http import TargetClient
from sim.provision import register_fleet
from tests.conftest import StartTarget


def test_register_then_reuse_then_resume(start_target: StartTarget) -> None:
    target = start_target("ES256")
    client = TargetClient(target.url, target.admin_key)
    fleet = make_fleet(7, "ES256")
    first = register_fleet(client, fleet, chunk=3)
    assert (first.created, first.already_registered) == (7, 0)
    again = register_fleet(client, fleet, chunk=3)
    assert (again.created, again.already_registered) == (0, 7)
    client.request("DELETE", f"/admin/devices/{fleet.devices[4].id}", admin=True)
    resumed = register_fleet(client, fleet, chunk=3)  # chunk 2 conflicts; its missing one is added
    assert (resumed.created, resumed.already_registered) == (1, 6)
    record = client.json("GET", f"/admin/devices/{fleet.devices[4].id}", admin=True)
    assert record["public_key"] == fleet.devices[4].public_jwk


def test_a_fleet_that_does_not_match_the_target(start_target: StartTarget) -> None:
    target = start_target("HS256")
    client = TargetClient(target.url, target.admin_key)
    fleet = make_fleet(2, "ES256")
    impostor = make_fleet(1, "ES256").devices[0]
    entry = {**impostor.registration(), "id": fleet.devices[1].id}
    client.request("POST", "/admin/devices", admin=True, json={"devices": [entry]})
    with pytest.raises(FleetMismatch, match="fleet file does not match the target"):
        register_fleet(client, fleet)


def test_wrong_admin_key_and_no_target(start_target: StartTarget) -> None:
    target = start_target("HS256")
    with pytest.raises(AdminKeyRejected):
        register_fleet(TargetClient(target.url, "not-the-key-0123456789"), make_fleet(1, "secret"))
    target.stop()
    with pytest.raises(TargetUnreachable):
        register_fleet(TargetClient(target.url, "x"), make_fleet(1, "secret"))
