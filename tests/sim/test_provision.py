from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from sim.errors import AdminKeyRejected, FleetMismatch, TargetUnreachable
from sim.fleet.admin import register_fleet
from sim.fleet.client import TargetClient
from sim.fleet.model import load_fleet, make_fleet
from sim.provision import ProvisionConfig, provision
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


def test_the_provision_engine_writes_the_fleet_and_prints_nothing(
    start_target: StartTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = start_target("HS256")
    steps: list[tuple[str, int]] = []

    def bar(description: str, total: int) -> Callable[[int], None]:
        steps.append((description, total))
        return lambda n: None

    config = ProvisionConfig(
        target=target.url, admin_key=target.admin_key, devices=3, alg="secret",
        out=tmp_path / "fleet.json", bar=bar,
    )  # fmt: skip
    done = provision(config)
    assert capsys.readouterr() == ("", "")  # output is the CLI's job
    assert done.registered is not None and done.registered.created == 3
    assert len(load_fleet(done.path)) == 3 and steps == [("keys (secret)", 3), ("register", 3)]
    with pytest.raises(FrozenInstanceError):
        config.devices = 4  # type: ignore[misc]
