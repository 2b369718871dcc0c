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
import requests

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


def test_an_expired_token_is_renewed_by_the_refresh_call(flask_api: str, tmp_path: Path) -> None:
    """Issue 26 item 9: renewal after an expiry through [token.refresh]; rows named for the
    profile's calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", "flask-jwt-extended", "--target",
         flask_api, "--scenario", "expiry", "--devices", "3", "--duration", "10",
         "--interval", "0.5", "--results", str(tmp_path / "r")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["expiry"]["expirations"] > 0
    rows = {(r["scenario"], r["endpoint"]): r for r in summary["requests"]}
    # After each refused expired token: POST /refresh with the held refresh token, not a login.
    assert rows[("expiry", "token refresh")]["outcomes"].get("ok", 0) > 0, list(rows)
    assert ("expiry", "token login") not in rows, list(rows)
    # The first token is a password login: named so, not "token client_credentials" ("token cc").
    assert ("setup", "token login") in rows
    assert not any(endpoint == "token client_credentials" for _, endpoint in rows)
    assert "token cc" not in result.stdout and "token login" in result.stdout


def test_the_corpus_is_judged_by_the_profiles_refusal_classes(
    flask_api: str, tmp_path: Path
) -> None:
    """Issue 26 item 8: flask-jwt-extended refuses a forgery 422 (``invalid`` in the profile)
    and a missing header 401 (``missing``), as the profile says: summary.json's corpus calls
    each of those refused, as the table does, not ``refused_otherwise``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", "flask-jwt-extended", "--target",
         flask_api, "--scenario", "rejection", "--bad-ratio", "1", "--devices", "3",
         "--duration", "4", "--interval", "0.1", "--results", str(tmp_path / "r"), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    corpus = json.loads((tmp_path / "r" / "summary.json").read_text())["corpus"]
    refused = {case: counts for case, counts in corpus.items() if counts.get("refused")}
    assert len(refused) >= 5, corpus
    assert not any(counts.get("refused_otherwise") for counts in corpus.values()), corpus


def test_a_run_calls_only_what_the_profile_names(flask_api: str, tmp_path: Path) -> None:
    """Issue 26 item 10: no /healthz, RFC 8414 metadata or /metrics on a foreign API whose
    profile names none of them (404s in its logs, and calls nobody asked for)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", "flask-jwt-extended", "--target",
         flask_api, "--devices", "2", "--duration", "3", "--interval", "0.5",
         "--results", str(tmp_path / "r"), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    called = set(requests.get(f"{flask_api}/debug/paths", timeout=10).json()) - {"/debug/paths"}
    assert {"/register", "/login", "/protected"} <= called
    assert called <= {"/register", "/login", "/refresh", "/protected"}, called
