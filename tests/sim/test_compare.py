"""fleetbench compare: the JSON it prints, from real measurements and real runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.embedded import EmbeddedTarget
from target.costs import DEVICE

MICRO = ("sign_us", "verify_us", "raw_verify_us", "cached_verify_us", "token_bytes")
E2E = ("e2e_rps", "e2e_p50_us", "e2e_p99_us", "server_verify_us")


def _compare(*args: str, timeout_s: float = 120) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "sim", "compare", "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _real_token_bytes(alg: str) -> int:
    """The size of an access token the real target issues for a device id as long as the bench's."""
    with EmbeddedTarget(alg) as target:
        return len(target.device_token(DEVICE, "compare-test-secret-q7Xk2mZ9vR4t"))


def test_micro_only_measures_every_algorithm_and_token_sizes_match_real_tokens(
    tmp_path: Path,
) -> None:
    algs = ["HS256", "ES256", "EdDSA"]
    result = _compare(
        "--micro-only", "--algs", ",".join(algs), "--repeat", "2", "--micro-budget", "0.02",
        "--results", str(tmp_path),
    )  # fmt: skip
    assert result["baseline"] == "HS256"
    assert list(result["algorithms"]) == algs
    for alg in algs:
        entry = result["algorithms"][alg]
        for name in MICRO:
            assert entry[name] > 0, (alg, name)
            low, high = entry["spread"][name]["min"], entry["spread"][name]["max"]
            assert low <= entry[name] <= high
        assert entry["token_bytes"] == _real_token_bytes(alg)
        # the cache skips signature work: it must be cheaper than the signature check alone
        assert entry["cached_verify_us"] < entry["raw_verify_us"]
        assert "e2e_rps" not in entry
    assert result["algorithms"]["ES256"]["ratio_to_baseline"]["verify_us"] == pytest.approx(
        result["algorithms"]["ES256"]["verify_us"] / result["algorithms"]["HS256"]["verify_us"]
    )
    assert json.loads((tmp_path / "compare.json").read_text()) == result
    assert "ES256" in (tmp_path / "report.html").read_text()


def test_end_to_end_compare_runs_each_algorithm_against_its_own_target(tmp_path: Path) -> None:
    result = _compare(
        "--algs", "HS256,ES256", "--repeat", "1", "--micro-budget", "0.02",
        "--duration", "3", "--devices", "5", "--results", str(tmp_path), timeout_s=180,
    )  # fmt: skip
    assert result["end_to_end"] is True
    for alg in ("HS256", "ES256"):
        entry = result["algorithms"][alg]
        for name in E2E:
            assert entry[name] > 0, (alg, name)
        assert entry["e2e_p50_us"] <= entry["e2e_p99_us"]
        summary = json.loads((tmp_path / f"e2e-{alg}-1" / "summary.json").read_text())
        assert summary["run"]["target"]["token_alg"] == alg
        assert summary["outcomes"]["accepted_invalid"] == 0


def test_unknown_algorithm_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sim", "compare", "--micro-only", "--algs", "HS256,XS999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "XS999" in lines[0] and "ES256" in lines[0]
