"""``--token-ttl`` with a minted-token profile sets the lifetime of the tokens the devices mint
(it was refused; issue 26 item 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands import fleetbench
from tests.sim.conftest import REPO, serve_stalling_api

pytestmark = pytest.mark.slow  # each test starts real processes

PROFILE = str(REPO / "tests/apis/stall/profile.toml")  # minted HS256 tokens, ttl_s 3600


def _mints(url: str, folder: Path, *more: str) -> tuple[int, int]:
    done = fleetbench(
        "run", "--profile", PROFILE, "--target", url, "--scenario", "verification",
        "--devices", "2", "--duration", "5", "--interval", "0.25", "--results", str(folder),
        "--quiet", *more,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((folder / "summary.json").read_text())
    return summary["mint_us"]["HS256"]["count"], summary["run"]["parameters"]["token_ttl"]


def test_token_ttl_sets_the_minted_lifetime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_stalling_api(monkeypatch, after_s=600, stall_s=0.1) as url:  # no stall in the run
        default = _mints(url, tmp_path / "default")
        short = _mints(url, tmp_path / "short", "--token-ttl", "2")
    assert default == (2, 3600)  # one token per device for the whole run
    # 2 s tokens, renewed at 50-80 % of their life: each device mints again every 1-1.6 s.
    count, ttl = short
    assert ttl == 2 and count >= 2 * 3, short
