"""``python -m benchmarks.sign``: the thin command over the micro-measurement core."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each test runs the benchmark command

FIGURES = {"sign_us", "verify_us", "raw_verify_us", "naive_verify_us", "cached_verify_us"}


def test_bench_command_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.sign", "--algs", "HS256", "--budget", "0.02", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout)["algorithms"]["HS256"]
    assert set(figures) == FIGURES | {"token_bytes"}


def test_bench_command_refuses_an_unknown_algorithm_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.sign", "--algs", "HS999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "benchmarks.sign: error: unknown algorithm HS999; choose from "
        "HS256, HS384, HS512, ES256, ES384, EdDSA, RS256, PS256"
    ]
