"""``--backoff`` waits at least what a 429's Retry-After asks (RFC 9110 10.2.3; issue 26
item 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.commands import fleetbench
from tests.sim.conftest import serve_broken_target
from tests.sim.profiles.test_profile_run import PROFILE

pytestmark = pytest.mark.slow  # each test starts real processes

RETRY_AFTER_S = 3


@pytest.fixture
def throttled_logins(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LOGIN_RETRY_AFTER_S", str(RETRY_AFTER_S))
    with serve_broken_target("tests.sim.login_target:app") as url:
        yield url


def test_backoff_honours_retry_after(throttled_logins: str, tmp_path: Path) -> None:
    profile = tmp_path / "login.toml"
    profile.write_text(PROFILE)
    done = fleetbench(
        "run", "--profile", str(profile), "--target", throttled_logins, "--backoff",
        "--scenario", "verification", "--devices", "3", "--duration", "6", "--interval", "0.5",
        "--results", str(tmp_path / "r"), "--quiet",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    retries = summary["token_retries"]
    # Each device's first login is a 429 asking for 3 s: each wait is at least that long.
    assert retries["retries"] >= 3, retries
    assert retries["backoff_s"] >= RETRY_AFTER_S * retries["retries"], retries
    assert summary["outcomes"]["ok"] > 0  # and the devices came back
