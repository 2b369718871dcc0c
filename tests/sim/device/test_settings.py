"""``--endpoint`` names one of the profile's ``[[endpoints]]``
(sim/device/settings.choose_endpoint), for ``run`` and the standalone Locust configuration alike;
an unknown name is one line listing them."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import pytest

from sim.device.settings import SimConfig
from sim.errors import ConfigError
from sim.profiles import ProfileError, load_profile
from tests.apis.flask_jwt import FLASK_PROFILE
from tests.apis.serve import serve_listening
from tests.commands import fleetbench, fleetbench_here


def two_endpoint_profile(folder: Path) -> Path:
    """The shipped flask-jwt-extended profile with a second endpoint, ``health``."""
    path = folder / "flask-two.toml"
    extra = '\n[[endpoints]]\nname = "health"\nmethod = "GET"\npath = "/healthz"\n'
    path.write_text(FLASK_PROFILE.read_text() + extra)
    return path


@pytest.mark.slow
def test_endpoint_names_one_of_a_foreign_profiles_endpoints(tmp_path: Path) -> None:
    profile = two_endpoint_profile(tmp_path)
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32)}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        done = fleetbench(
            "run", "--profile", str(profile), "--target", url, "--endpoint", "health",
            "--devices", "2", "--duration", "2", "--interval", "0.1",
            "--results", str(tmp_path / "r"), "--quiet",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["run"]["parameters"]["endpoint"] == "health"
    called = {r["endpoint"] for r in summary["requests"] if r["scenario"] == "verification"}
    assert called == {"health"}


def test_an_unknown_endpoint_is_one_line_listing_the_profiles(tmp_path: Path) -> None:
    profile = two_endpoint_profile(tmp_path)
    done = fleetbench_here(
        "run", "--profile", str(profile), "--target", "http://127.0.0.1:9",
        "--endpoint", "telemetry", "--results", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "fleetbench: error: --endpoint 'telemetry': profile flask-jwt-extended has the"
        " endpoints protected, health"
    ]


def test_the_default_endpoint_is_the_profiles(tmp_path: Path) -> None:
    base = {"FLEETBENCH_FLEET": str(tmp_path / "fleet.json")}
    assert SimConfig.from_env(base).endpoint == "telemetry"  # ours: default_endpoint
    foreign = {**base, "FLEETBENCH_PROFILE": str(two_endpoint_profile(tmp_path))}
    assert SimConfig.from_env(foreign).endpoint is None  # none: all, by weight
    assert SimConfig.from_env({**foreign, "FLEETBENCH_ENDPOINT": "health"}).endpoint == "health"
    with pytest.raises(ConfigError, match="FLEETBENCH_ENDPOINT 'data': profile flask-jwt"):
        SimConfig.from_env({**foreign, "FLEETBENCH_ENDPOINT": "data"})


def test_a_default_endpoint_the_profile_lacks_is_one_line_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    text = FLASK_PROFILE.read_text().replace(
        "leeway_s = 0\n", 'leeway_s = 0\ndefault_endpoint = "data"\n'
    )
    path.write_text(text)
    line = text.splitlines().index('default_endpoint = "data"') + 1
    with pytest.raises(ProfileError) as raised:
        load_profile(str(path), {})
    assert str(raised.value) == (
        f"{path}:{line}: default_endpoint 'data' is not one of the endpoints (protected)"
    )
