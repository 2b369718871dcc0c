"""fleetbench compare: the JSON it prints, from real measurements and real runs."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sim.artefacts.codec import read_compare
from sim.run.embedded import EmbeddedTarget
from target.costs import DEVICE
from tests.apis.flask_jwt import metrics_profile
from tests.apis.serve import serve_listening
from tests.commands import fleetbench, fleetbench_here
from tests.sim.conftest import RealCommand

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


@pytest.mark.slow
def test_micro_only_measures_every_algorithm_and_token_sizes_match_real_tokens(
    real_micro_compare: RealCommand,
) -> None:
    algs = ["HS256", "ES256", "EdDSA"]  # --micro-only --repeat 2 --micro-budget 0.02
    assert real_micro_compare.done.returncode == 0, real_micro_compare.done.stderr
    result, tmp_path = real_micro_compare.json(), real_micro_compare.results
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


@pytest.mark.slow
def test_end_to_end_compare_runs_each_algorithm_against_its_own_target(
    real_e2e_compare: RealCommand,
) -> None:
    # --algs HS256,ES256 --repeat 1 --micro-budget 0.02 --duration 3 --devices 5
    assert real_e2e_compare.done.returncode == 0, real_e2e_compare.done.stderr
    result, tmp_path = real_e2e_compare.json(), real_e2e_compare.results
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
    done = fleetbench_here("compare", "--micro-only", "--algs", "HS256,XS999")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "XS999" in lines[0] and "ES256" in lines[0]


# -- on a team's own services (--target/--profile) ----------------------------------------------


def _flask_api(alg: str) -> contextlib.AbstractContextManager[str]:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_ALG": alg}
    return serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env)


@pytest.mark.slow
def test_compare_on_two_services_of_its_own_through_a_profile(tmp_path: Path) -> None:
    """HS256 and ES256 each on their own flask-jwt-extended service, two rounds (the devices
    registered in the first log in again in the second), the server's verify time from the
    profile's [metrics] verify_time."""
    profile = metrics_profile(tmp_path)
    with _flask_api("HS256") as hs256, _flask_api("ES256") as es256:
        result = _compare(
            "--algs", "HS256,ES256", "--repeat", "2", "--micro-budget", "0.02",
            "--duration", "2", "--devices", "3", "--target", f"HS256={hs256}",
            "--target", f"ES256={es256}", "--profile", str(profile),
            "--results", str(tmp_path / "c"), timeout_s=240,
        )  # fmt: skip
    assert result["micro_scope"] == "local"
    assert result["targets"] == {
        "HS256": {"url": hs256, "embedded": False, "profile": str(profile)},
        "ES256": {"url": es256, "embedded": False, "profile": str(profile)},
    }
    assert result["parameters"]["endpoint"] is None  # the profile's only endpoint
    for alg in ("HS256", "ES256"):
        entry = result["algorithms"][alg]
        for name in E2E:
            assert entry[name] > 0, (alg, name)
        for round_index in (1, 2):
            summary = json.loads(
                (tmp_path / "c" / f"e2e-{alg}-{round_index}" / "summary.json").read_text()
            )
            assert summary["run"]["profile"]["name"] == "flask-jwt-extended"
            assert summary["run"]["fleet"]["already_registered"] == (3 if round_index == 2 else 0)
            rows = [r for r in summary["requests"] if r["scenario"] == "verification"]
            assert {r["alg"] for r in rows} == {alg}
            verify = summary["server"]["verify"][alg]
            assert verify["count"] >= sum(r["count"] for r in rows if r["endpoint"] == "protected")
    read_compare(tmp_path / "c" / "compare.json")  # the CompareFile type, checked
    report = (tmp_path / "c" / "report.html").read_text()
    assert "sign_us (local)" in report and 'id="micro-scope"' in report and es256 in report


@pytest.mark.slow
def test_a_service_signing_another_algorithm_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with _flask_api("ES256") as es256:
        done = fleetbench(
            "compare", "--algs", "HS256", "--repeat", "1", "--micro-budget", "0.02",
            "--duration", "2", "--devices", "2", "--target", f"HS256={es256}",
            "--profile", "flask-jwt-extended", "--results", str(tmp_path),
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ES256 tokens, not HS256" in lines[0], done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # a profile minting HS256 given for ES256: refused before anything runs
        (("--algs", "HS256,ES256", "--target", "http://127.0.0.1:9", "--profile",
          "seed-express"), "profile seed-express mints HS256 tokens, not ES256"),
        (("--algs", "HS256,ES256", "--target", "HS256=http://127.0.0.1:9"),
         "--target gives no URL for ES256"),
        (("--algs", "HS256", "--target", "ES256=http://127.0.0.1:9"), "ES256 is not in --algs"),
        (("--algs", "HS256", "--profile", "seed-express"), "give --target URL"),
        (("--algs", "HS256", "--micro-only", "--target", "http://127.0.0.1:9"), "--micro-only"),
        (("--algs", "HS256", "--endpoint", "nope"),
         "--endpoint 'nope': profile fleetbench has the endpoints telemetry, config, data"),
    ],
)  # fmt: skip
def test_compare_target_options_misused_are_one_line_and_exit_2(
    args: tuple[str, ...], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    monkeypatch.setenv("JWT_SECRET", "compare-test-secret")
    done = fleetbench_here("compare", *args, "--results", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert time.monotonic() - started < 30  # before any measuring
