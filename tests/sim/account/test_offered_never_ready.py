"""Devices that never got past setting up are a shortfall in any mode, ``--interval 0``
included, and the table says how many (issue 26 item 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.conftest import REPO, serve_broken_target
from tests.sim.profiles.test_profile_run import PROFILE

pytestmark = pytest.mark.slow  # each test starts real processes


def test_devices_never_ready_make_a_closed_loop_run_overloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "login.toml"
    profile.write_text(PROFILE)
    # Only 2 of the 6 devices' logins are answered within the run, as behind a connection limit.
    monkeypatch.setenv("LOGIN_ANSWERS", "2")
    monkeypatch.setenv("LOGIN_HOLD_S", "8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    with serve_broken_target("tests.sim.login_target:app") as url:
        result = subprocess.run(
            [sys.executable, "-m", "sim", "run", "--profile", str(profile), "--target", url,
             "--scenario", "verification", "--devices", "6", "--interval", "0",
             "--duration", "3", "--results", str(tmp_path / "r")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    load = summary["load"]
    assert load["devices_ready"] == 2 and load["devices_never_ready"] == 4
    assert load["overloaded"] and summary["verdict"]["label"] == "PASS (overloaded)"
    assert "4 devices never ready" in result.stdout
    assert "4 of 6 devices never got past setting up" in result.stdout
