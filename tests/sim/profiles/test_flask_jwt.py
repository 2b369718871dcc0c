"""``fleetbench run --profile flask-jwt-extended`` against a real flask-jwt-extended API
(tests/apis/flask_jwt): its own registration call, a JSON login, 422 for bad tokens."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apis.serve import serve_listening

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def flask_api() -> Iterator[str]:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_TTL_S": "4"}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        yield url


def test_mixed_run_against_flask_jwt_extended_adds_up(flask_api: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", "flask-jwt-extended", "--target",
         flask_api, "--scenario", "mixed", "--devices", "5", "--duration", "10",
         "--interval", "0.2", "--results", str(tmp_path), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"]["profile"]["name"] == "flask-jwt-extended"
    assert summary["run"]["fleet"]["created"] == 5
    outcomes = summary["outcomes"]
    assert summary["totals"]["requests"] == sum(outcomes.values())
    locust = json.loads((tmp_path / "locust_stats.json").read_text())
    assert summary["totals"]["requests"] == sum(e["num_requests"] for e in locust)
    assert outcomes["accepted_invalid"] == outcomes["refused_valid"] == 0
    assert outcomes["server_error"] == outcomes["transport_error"] == 0
    rows = summary["requests"]
    assert any(r["scenario"] == "issuance" and r["outcomes"].get("ok") for r in rows)
    # 4 s tokens from the API: refused as expired (401 "Token has expired"), then renewed.
    assert summary["expiry"]["expirations"] > 0
    assert summary["expiry"]["devices_recovered"] > 0
    forged = [r for r in rows if r["scenario"] == "rejection"]
    assert sum(r["outcomes"].get("rejected_as_expected", 0) for r in forged) > 0
    # Renewal through flask-jwt-extended's refresh token (POST /refresh, JSON location).
    assert any(r["endpoint"] == "token refresh" and r["outcomes"].get("ok") for r in rows), rows
