"""The shipped drf-simplejwt and fastapi-oauth2 profiles against real apps of those stacks
(tests/apis/drf_simplejwt, tests/apis/fastapi_oauth2): ``probe`` finds the profile consistent,
a mixed run passes with expiries renewed, and ``attack`` finds every forgery refused, with no
step outside fleetbench (issue 26 item 11)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apis.serve import serve_listening
from tests.commands import fleetbench

pytestmark = pytest.mark.slow  # each test starts real processes

APPS = {
    "drf-simplejwt": "tests.apis.drf_simplejwt.app",
    "fastapi-oauth2": "tests.apis.fastapi_oauth2.app",
}


@pytest.fixture(params=sorted(APPS))
def api(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(profile name, URL) of a fresh app whose tokens live 4 s."""
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_TTL_S": "4"}
    with serve_listening([sys.executable, "-m", APPS[request.param], "0"], env) as url:
        yield request.param, url


def test_probe_run_and_attack_through_the_shipped_profile(
    api: tuple[str, str], tmp_path: Path
) -> None:
    profile, url = api
    probe = fleetbench("probe", "--profile", profile, "--target", url, "--expiry-wait", "8")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    run = fleetbench(
        "run", "--profile", profile, "--target", url, "--scenario", "mixed", "--devices", "4",
        "--duration", "10", "--interval", "0.3", "--results", str(tmp_path / "run"), "--quiet",
        timeout=150,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    outcomes = summary["outcomes"]
    assert outcomes["ok"] > 0 and summary["run"]["fleet"]["created"] == 4
    assert outcomes["accepted_invalid"] == outcomes["refused_valid"] == 0, outcomes
    assert outcomes["server_error"] == outcomes["transport_error"] == 0, outcomes
    assert summary["expiry"]["expirations"] > 0 and summary["expiry"]["devices_recovered"] > 0
    corpus = summary["corpus"]
    assert not any(c.get("refused_otherwise") for c in corpus.values()), corpus
    attack = fleetbench(
        "attack", "--profile", profile, "--target", url, "--results", str(tmp_path / "attack"),
        "--quiet", timeout=150,
    )  # fmt: skip
    assert attack.returncode == 0, attack.stdout + attack.stderr
    [attacked] = json.loads((tmp_path / "attack" / "attack.json").read_text())["runs"]
    verdicts = {case["verdict"] for case in attacked["cases"]}
    assert verdicts <= {"refused", "skipped"} and "refused" in verdicts, verdicts
