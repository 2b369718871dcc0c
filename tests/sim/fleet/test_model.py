from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sim.errors import FleetError
from sim.fleet.model import load_fleet, make_fleet, save_fleet


@pytest.mark.parametrize("kind", ["ES256", "EdDSA", "secret"])
def test_fleet_file_round_trip_is_0600(tmp_path: Path, kind: str) -> None:
    fleet = make_fleet(3, kind)  # type: ignore[arg-type]
    path = tmp_path / "fleet.json"
    save_fleet(fleet, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_fleet(path)
    assert loaded.kind == kind
    assert [d.id for d in loaded] == [d.id for d in fleet]
    assert len({d.id for d in loaded}) == 3
    if kind != "secret":
        assert loaded.devices[0].private_key() is not None
        assert "d" not in loaded.devices[0].registration()["public_key"]


def test_secrets_stay_out_of_repr() -> None:
    device = make_fleet(1, "ES256").devices[0]
    assert device.secret not in repr(device)
    assert "PRIVATE" not in repr(device)


def test_not_a_fleet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"devices": []}))
    with pytest.raises(FleetError, match="not a fleet file"):
        load_fleet(path)
    with pytest.raises(FleetError, match="not found"):
        load_fleet(tmp_path / "missing.json")
