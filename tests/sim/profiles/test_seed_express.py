"""``fleetbench run --profile seed-express`` against the real Express + jsonwebtoken seed API
(tests/apis/seed_express: node, its node_modules from ``npm ci``)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apis.flask_jwt import metrics_profile
from tests.apis.serve import serve_listening

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "tests" / "apis" / "seed_express"
SECRET = "a-seed-express-secret-for-tests-only"

pytestmark = pytest.mark.node  # skipped without node or its node_modules (tests/conftest.py)


@pytest.fixture
def seed_express() -> Iterator[str]:
    """The seed API on a free loopback port."""
    process = subprocess.Popen(
        ["node", str(APP / "server.js"), "0"],
        env={**os.environ, "JWT_SECRET": SECRET},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[:1] == ["listening"], line
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def fleetbench(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    env.pop("JWT_SECRET", None)
    if secret is not None:
        env["JWT_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_mixed_run_against_the_seed_api_adds_up(seed_express: str, tmp_path: Path) -> None:
    result = fleetbench(
        "run", "--profile", "seed-express", "--target", seed_express, "--scenario", "mixed",
        "--devices", "6", "--duration", "14", "--interval", "0.2", "--results", str(tmp_path),
        "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"]["profile"]["name"] == "seed-express"
    outcomes = summary["outcomes"]
    # The account adds up: every request one outcome, as many as Locust itself counted.
    assert summary["totals"]["requests"] == sum(outcomes.values())
    locust = json.loads((tmp_path / "locust_stats.json").read_text())
    assert summary["totals"]["requests"] == sum(e["num_requests"] for e in locust)
    assert outcomes["accepted_invalid"] == 0
    assert outcomes["refused_valid"] == 0
    assert outcomes["server_error"] == outcomes["transport_error"] == 0
    # Expired minted tokens (10 s) answered 403 like any bad token: expected refusals.
    rows = summary["requests"]
    expired = sum(
        r["outcomes"].get("rejected_as_expected", 0) for r in rows if r["scenario"] == "expiry"
    )
    assert expired > 0
    assert summary["expiry"]["expirations"] == expired
    assert summary["expiry"]["devices_recovered"] > 0
    # Forged tokens of the rejection scenario, sent raw in Authorization, all refused.
    forged = [r for r in rows if r["scenario"] == "rejection"]
    assert sum(r["outcomes"].get("rejected_as_expected", 0) for r in forged) > 0
    # No issuance: there is no token endpoint; tokens were minted (timed apart).
    assert not any(r["scenario"] == "issuance" for r in rows)
    assert {r["endpoint"] for r in rows} == {"data"}
    # The secret is in no file of the results folder (summary, report, Locust's logs and CSV).
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_issuance_on_a_minted_profile_is_one_clear_line(seed_express: str) -> None:
    result = fleetbench(
        "run", "--profile", "seed-express", "--target", seed_express, "--scenario", "issuance"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fleetbench: error: the issuance scenario needs a token endpoint: profile seed-express "
        "mints its tokens (token.source = minted)"
    ]


def test_a_missing_secret_names_the_variable_and_line(seed_express: str) -> None:
    result = fleetbench(
        "run", "--profile", "seed-express", "--target", seed_express, secret=None
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "fleetbench: error: seed-express (built in):17: environment variable JWT_SECRET is not set"
    )


def test_smoke_with_the_shipped_thresholds_fits_the_seed_api(
    seed_express: str, tmp_path: Path
) -> None:
    """The shipped thresholds select endpoints by class (``protected``) and skip what a profile
    cannot send (no token endpoint, no issuance), so they judge another API as they judge ours."""
    result = fleetbench(
        "smoke", "--profile", "seed-express", "--target", seed_express, "--devices", "40",
        "--duration", "8", "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no requests matched" not in result.stdout
    smoke = json.loads((tmp_path / "summary.json").read_text())
    names = {c["threshold"].split(":")[0] for c in smoke["checks"]}
    assert "protected endpoint latency" in names and "forged tokens refused" in names
    assert "token endpoint latency" not in names and "issuance" not in names
    assert SECRET not in result.stdout + result.stderr


def test_compare_hs256_on_the_seed_api_with_es256_on_another_service(
    seed_express: str, tmp_path: Path
) -> None:
    """One algorithm per service, each through its own profile: HS256 tokens the devices mint
    for the seed API, ES256 ones a flask-jwt-extended service issues (its verify histogram named
    by the profile); the seed API has no such figure: absent, not zero."""
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_ALG": "ES256"}
    flask = [sys.executable, "-m", "tests.apis.flask_jwt.app", "0"]
    with serve_listening(flask, env) as es256:
        result = fleetbench(
            "compare", "--algs", "HS256,ES256", "--repeat", "1", "--micro-budget", "0.02",
            "--duration", "2", "--devices", "3", "--json",
            "--target", f"HS256={seed_express}", "--profile", "HS256=seed-express",
            "--target", f"ES256={es256}", "--profile", f"ES256={metrics_profile(tmp_path)}",
            "--results", str(tmp_path / "c"),
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    compare = json.loads(result.stdout)
    assert compare["targets"]["HS256"]["profile"] == "seed-express"
    hs256, es256_entry = compare["algorithms"]["HS256"], compare["algorithms"]["ES256"]
    assert hs256["e2e_rps"] > 0 and es256_entry["e2e_rps"] > 0
    assert "server_verify_us" not in hs256
    assert es256_entry["server_verify_us"] > 0
    summary = json.loads((tmp_path / "c" / "e2e-HS256-1" / "summary.json").read_text())
    assert summary["server"]["reason"] == "the profile names no [metrics] verify_time"
