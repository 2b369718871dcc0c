"""A run through a profile file against a login-style API (tests/sim/login_target.py): the
API's own registration call, a JSON login, refusal classes read from the body."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.conftest import REPO, serve_broken_target

pytestmark = pytest.mark.slow  # each test starts a server, a run or the command

PROFILE = """\
name = "login-api"
leeway_s = 0

[devices]
id_pattern = "user-{n:04d}"
credentials = "secret"

[provision]
via = "call"
method = "POST"
path = "/api/register"
json = { username = "{device_id}", password = "{secret}" }
batch = 3

[token]
source = "endpoint"
path = "/api/login"
json = { username = "{device_id}", password = "{secret}" }
token_field = "access"
expires_in_field = "expires_in"

[present]
format = "Bearer {token}"

[[endpoints]]
name = "data"
path = "/api/devices/{device_id}/data"

[refusals]
missing = { status = [401], body = "not provided" }
expired = { status = [401], body = "token_expired" }
invalid = { status = [401], body = "token_not_valid" }
forbidden = { status = [403] }
"""


def test_a_login_api_run_through_a_profile_file(tmp_path: Path) -> None:
    profile = tmp_path / "login.toml"
    profile.write_text(PROFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    with serve_broken_target("tests.sim.login_target:app") as url:
        result = subprocess.run(
            [sys.executable, "-m", "sim", "run", "--profile", str(profile), "--target", url,
             "--scenario", "issuance=1,verification=4,rejection=1", "--devices", "5",
             "--duration", "5", "--interval", "0.2", "--results", str(tmp_path / "r"),
             "--quiet"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["run"]["profile"]["name"] == "login-api"
    assert summary["run"]["fleet"]["created"] == 5
    outcomes = summary["outcomes"]
    assert summary["totals"]["requests"] == sum(outcomes.values())
    assert outcomes["ok"] > 0
    assert outcomes["accepted_invalid"] == outcomes["refused_valid"] == 0
    assert outcomes["server_error"] == outcomes["transport_error"] == 0
    rows = {(r["scenario"], r["endpoint"]) for r in summary["requests"]}
    assert ("issuance", "token client_credentials") in rows
    assert ("verification", "data") in rows
    assert any(r["scenario"] == "rejection" for r in summary["requests"])


REFRESH = PROFILE.replace(
    'expires_in_field = "expires_in"',
    'expires_in_field = "expires_in"\nrefresh_token_field = "refresh"\n\n'
    '[token.refresh]\npath = "/api/refresh"\njson = { refresh = "{refresh_token}" }\n'
    'token_field = "access"',
)


def test_short_tokens_are_renewed_by_the_refresh_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "login.toml"
    profile.write_text(REFRESH)
    monkeypatch.setenv("LOGIN_TTL_S", "2")  # the served API's access-token lifetime
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    with serve_broken_target("tests.sim.login_target:app") as url:
        result = subprocess.run(
            [sys.executable, "-m", "sim", "run", "--profile", str(profile), "--target", url,
             "--scenario", "verification", "--devices", "3", "--duration", "6",
             "--interval", "0.2", "--results", str(tmp_path / "r"), "--quiet"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    rows = {
        r["endpoint"]: r["outcomes"] for r in summary["requests"] if r["scenario"] == "verification"
    }
    assert rows["token refresh"].get("ok", 0) > 0, rows
    assert summary["outcomes"]["refused_valid"] == summary["outcomes"]["accepted_invalid"] == 0
