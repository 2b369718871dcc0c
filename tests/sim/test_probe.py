"""``fleetbench probe`` against real APIs: our target (profile fleetbench), the Express seed API
(seed-express), a flask-jwt-extended API, and a lax API that accepts unverified tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.probe import ProbeConfig, run_probe
from sim.profiles import load_profile
from tests.commands import fleetbench_here
from tests.conftest import StartTarget
from tests.sim.conftest import serve_broken_target
from tests.sim.profiles.test_flask_jwt import flask_api  # noqa: F401 (a fixture)
from tests.sim.profiles.test_profile_run import PROFILE as LOGIN_PROFILE
from tests.sim.profiles.test_seed_express import SECRET as SEED_SECRET
from tests.sim.profiles.test_seed_express import seed_express  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
LAX_PROFILE = REPO / "tests" / "apis" / "lax" / "profile.toml"


def probe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", "probe", *args],
        cwd=REPO, env={**clean, "COLUMNS": "200", **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def rows(output: str) -> dict[str, str]:
    """The probe table's rows by probe name."""
    found = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 7:
            found[cells[0]] = line
    return found


@pytest.fixture
def lax_api() -> Iterator[str]:
    with serve_broken_target("tests.apis.lax.app:app") as url:
        yield url


def test_probe_reads_our_target_consistently(start_target: StartTarget) -> None:
    target = start_target(token_ttl=2)  # its own 2 s token, waited out (+ the profile's 10 s)
    result = probe("--profile", "fleetbench", "--target", target.url,
                   FLEETBENCH_ADMIN_KEY=target.admin_key)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found = rows(result.stdout)
    for name in ("valid", "missing", "forged", "alg-none", "malformed", "expired", "wrong-device"):
        assert name in found and "MISMATCH" not in found[name], result.stdout
    assert 'error_description="expired' in result.stdout  # the RFC 6750 challenge shown
    assert target.admin_key not in result.stdout + result.stderr


def test_probe_reads_the_express_seed_api_consistently(seed_express: str) -> None:  # noqa: F811
    result = probe("--profile", "seed-express", "--target", seed_express, JWT_SECRET=SEED_SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    found = rows(result.stdout)
    assert "401" in found["missing"] and "403" in found["forged"], result.stdout
    assert "expired" in found  # minted in the past: no wait
    assert SEED_SECRET not in result.stdout + result.stderr


def test_probe_reads_flask_jwt_extended_consistently(flask_api: str) -> None:  # noqa: F811
    result = probe("--profile", "flask-jwt-extended", "--target", flask_api)
    assert result.returncode == 0, result.stdout + result.stderr
    found = rows(result.stdout)
    assert all("422" in found[n] for n in ("forged", "alg-none", "malformed")), result.stdout
    # The API's own 4 s token, waited out: 401 "Token has expired", read as expired.
    assert "Token has expired" in found["expired"], result.stdout
    assert "wrong-device: the protected path names no device" in result.stdout


def test_probe_fails_a_lax_api(lax_api: str) -> None:
    result = probe("--profile", str(LAX_PROFILE), "--target", lax_api)
    assert result.returncode == 1, result.stdout + result.stderr
    found = rows(result.stdout)
    for name in ("forged", "alg-none", "expired", "wrong-device"):
        assert "MISMATCH" in found[name], result.stdout
    assert "MISMATCH" not in found["valid"]
    assert "accepted the unsigned token (alg none)" in result.stdout


def test_probe_names_the_profile_line_to_change(flask_api: str, tmp_path: Path) -> None:  # noqa: F811
    # A profile that expects 401 for a bad signature, where flask-jwt-extended answers 422.
    shipped = (REPO / "sim" / "profiles" / "builtin" / "flask-jwt-extended.toml").read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        shipped.replace("invalid = { status = [422, 401] }", "invalid = { status = [401] }")
    )
    line = next(
        n for n, t in enumerate(wrong.read_text().splitlines(), 1) if t.startswith("invalid")
    )
    result = probe("--profile", str(wrong), "--target", flask_api, "--expiry-wait", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped expired: the API's token lives" in result.stdout  # 4 s > --expiry-wait 0
    assert f"add 422 to [refusals] invalid ({wrong}:{line})" in result.stdout


def test_probe_bad_input_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", "x")
    for args in (
        ["--profile", "no-such-profile", "--target", "http://127.0.0.1:9"],
        ["--profile", "seed-express", "--target", "ftp://127.0.0.1:9"],
        ["--profile", "flask-jwt-extended", "--target", "http://127.0.0.1:9"],
    ):
        result = fleetbench_here("probe", *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def test_run_probe_returns_typed_steps_without_tokens(lax_api: str) -> None:
    profile = load_profile(str(LAX_PROFILE), {})
    result = run_probe(ProbeConfig(profile, lax_api))
    assert not result.consistent
    by_name = {step.name: step for step in result.steps}
    assert set(by_name) == {
        "valid", "missing", "forged", "alg-none", "malformed", "expired", "wrong-device"
    }  # fmt: skip
    assert by_name["valid"].consistent and by_name["missing"].classified == "missing"
    assert not by_name["forged"].consistent and "the API must" in by_name["forged"].fix
    for step in result.steps:  # the lax API echoes claims, never a whole token or the key
        assert step.excerpt.count(".") < 2 and "lax-api-test-secret" not in step.excerpt


@pytest.mark.slow
def test_probe_reads_body_classes_and_expires_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A login API that names every refusal in a JSON code, registers in batches and gives the
    # lifetime as expires_in (2 s here: the expired probe waits it out).
    profile = tmp_path / "login.toml"
    profile.write_text(LOGIN_PROFILE)
    monkeypatch.setenv("LOGIN_TTL_S", "2")
    with serve_broken_target("tests.sim.login_target:app") as url:
        result = probe("--profile", str(profile), "--target", url)
    assert result.returncode == 0, result.stdout + result.stderr
    found = rows(result.stdout)
    reads = {name: [c.strip() for c in line.split("│")][5] for name, line in found.items()}
    assert reads["forged"] == reads["alg-none"] == reads["malformed"] == "invalid", result.stdout
    assert reads["wrong-device"] == "forbidden" and reads["expired"] == "expired", result.stdout


def test_probe_names_a_wrong_token_or_registration_path(flask_api: str, tmp_path: Path) -> None:  # noqa: F811
    shipped = (REPO / "sim" / "profiles" / "builtin" / "flask-jwt-extended.toml").read_text()
    for wrong_line, key in (('path = "/login"', "token"), ('path = "/register"', "provision")):
        wrong = tmp_path / f"{key}.toml"
        wrong.write_text(shipped.replace(wrong_line, 'path = "/nowhere"'))
        line = wrong.read_text().splitlines().index('path = "/nowhere"') + 1
        result = probe("--profile", str(wrong), "--target", flask_api)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"check [{key}] path" in result.stdout and f"({wrong}:{line})" in result.stdout
