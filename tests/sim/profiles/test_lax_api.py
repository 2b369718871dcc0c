"""``fleetbench run --profile`` against a lax API (tests/apis/lax: reads tokens without
verifying them) must fail: the forged tokens it accepts are counted, the verdict is FAIL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sim.conftest import serve_broken_target

REPO = Path(__file__).resolve().parents[3]
PROFILE = REPO / "tests" / "apis" / "lax" / "profile.toml"


@pytest.fixture
def lax_api() -> Iterator[str]:
    with serve_broken_target("tests.apis.lax.app:app") as url:
        yield url


def test_run_against_a_lax_api_fails(lax_api: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", str(PROFILE), "--target", lax_api,
         "--scenario", "rejection", "--bad-ratio", "1", "--devices", "3", "--duration", "4",
         "--interval", "0.2", "--results", str(tmp_path), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "accepted_invalid" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"]["passed"] is False
    outcomes = summary["outcomes"]
    assert outcomes["accepted_invalid"] > 0
    assert summary["totals"]["requests"] == sum(outcomes.values())
