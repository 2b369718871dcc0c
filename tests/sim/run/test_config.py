"""The Locust side's settings derived from the run's config (RunConfig.locust_settings): every
field the two share crosses by name, the rest is what the run found or made."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim.profiles
from sim.device.settings import SimConfig
from sim.errors import ConfigError
from sim.run.config import RunConfig
from sim.run.distributed import START_SPREAD_S
from sim.shape.stages import parse_stages


def test_every_shared_field_crosses_with_the_runs_value(tmp_path: Path) -> None:
    config = RunConfig(
        scenarios={"expiry": 2, "verification": 1},
        endpoint="config",
        interval_s=0.25,
        refresh="proactive",
        bad_ratio=0.2,
        rate_rps=40.0,
        stages=parse_stages("5s:10r,5s:0r"),
        storm="expiry-storm",
        backoff=True,
        leeway=3,
        master=True,
    )
    settings = config.locust_settings(
        fleet=tmp_path / "fleet.json",
        issuer="urn:x",
        scratch=tmp_path,
        seq_base={"d-1": 7},
        live_account=True,
    )
    assert settings == SimConfig(
        fleet=str(tmp_path / "fleet.json"),
        scenarios={"expiry": 2, "verification": 1},
        endpoint="config",
        interval_s=0.25,
        refresh="proactive",
        bad_ratio=0.2,
        leeway_s=3.0,
        issuer="urn:x",
        raw=str(tmp_path / "raw.json"),
        claim_file=str(tmp_path / "claims"),
        seq_base={"d-1": 7},
        progress_file=str(tmp_path / "progress.json"),
        profile="fleetbench",
        rate_rps=40.0,
        stages="5s:10r,5s:0r",  # crosses as text, parsed again on the Locust side
        distributed=True,
        start_spread_s=START_SPREAD_S,
        storm="expiry-storm",
        backoff=True,
        live_account=True,
    )
    # The file Locust reads gives back the same settings.
    settings.write(tmp_path / "sim-config.json")
    assert SimConfig.read(tmp_path / "sim-config.json") == settings


def test_a_profile_file_named_from_here_is_found_from_locusts_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builtin = Path(sim.profiles.__file__).parent / "builtin" / "fleetbench.toml"
    (tmp_path / "ours.toml").write_text(builtin.read_text())
    monkeypatch.chdir(tmp_path)
    settings = RunConfig(profile="ours.toml").locust_settings(
        fleet=tmp_path / "fleet.json", issuer=None, scratch=tmp_path, seq_base={}
    )
    assert settings.profile == str((tmp_path / "ours.toml").resolve())
    assert settings.endpoint == "telemetry"  # the profile's default endpoint
    assert settings.leeway_s == 10.0  # the embedded target's, with an hour's tokens
    assert (settings.distributed, settings.start_spread_s) == (False, 0.0)
    assert (settings.rate_rps, settings.stages, settings.storm) == (None, None, None)


def test_transport_mqtt_takes_a_profile_with_an_mqtt_section() -> None:
    config = RunConfig(
        transport="mqtt",
        profile="emqx-jwt",
        target="http://127.0.0.1:1",
        admin_key="k",
        mqtt_port=1,
    )
    config.check()  # another API's profile, with its broker named: no refusal
    assert config.loaded_profile.has_mqtt


def test_transport_mqtt_names_the_missing_mqtt_section() -> None:
    with pytest.raises(
        ConfigError, match=r"^--transport mqtt needs the profile's \[mqtt\] section"
    ):
        RunConfig(
            transport="mqtt",
            profile="flask-jwt-extended",
            target="http://127.0.0.1:1",
            admin_key="k",
            mqtt_port=1,
        ).check()
