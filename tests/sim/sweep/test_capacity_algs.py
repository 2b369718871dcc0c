"""``capacity`` against a foreign API measures only the algorithm its tokens carry: the default
``--algs`` with ``--target`` is the API's, and a step whose tokens are another algorithm's is
refused (issue 26 item 3)."""

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

ONE_SHORT_STEP = ["--devices", "2", "--step-duration", "2", "--start-rate", "5",
                  "--max-steps", "1", "--narrow-steps", "0", "--slo", "p99=2s"]  # fmt: skip


@pytest.fixture  # a fresh API each: a new fleet cannot log in as another's devices
def hs256_api() -> Iterator[str]:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_TTL_S": "3600"}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        yield url


def test_with_a_target_the_default_algs_are_the_apis(hs256_api: str, tmp_path: Path) -> None:
    results = tmp_path / "c"
    done = fleetbench(
        "capacity", "--target", hs256_api, "--profile", "flask-jwt-extended", *ONE_SHORT_STEP,
        "--results", str(results), timeout=180,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "--algs HS256: the algorithm of the API's tokens" in done.stdout
    result = json.loads((results / "capacity.json").read_text())
    assert list(result["algorithms"]) == ["HS256"]  # not the embedded default HS256,ES256
    assert "ES256" not in done.stdout


def test_a_step_with_another_algorithms_tokens_is_refused(hs256_api: str, tmp_path: Path) -> None:
    done = fleetbench(
        "capacity", "--algs", "ES256", "--target", hs256_api, "--profile", "flask-jwt-extended",
        *ONE_SHORT_STEP, "--results", str(tmp_path / "c"), "--quiet", timeout=180,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"fleetbench: error: {hs256_api} (--target ES256=...) answered with HS256 tokens,"
        " not ES256: name its algorithm in --algs"
    ]
