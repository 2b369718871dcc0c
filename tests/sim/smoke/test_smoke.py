"""``fleetbench smoke`` end to end, as CI runs it: real targets, real Locust, bounded time."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sim.run.embedded import free_port
from sim.shape.scenarios import MIXED
from tests.commands import fleetbench, fleetbench_here
from tests.sim.conftest import RealCommand
from tests.sim.device.test_user import assert_mix

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_smoke_end_to_end(real_smoke: RealCommand) -> None:
    # The default 8 s: 4 s tokens are refused from about 5 s after issue, so expiry shows.
    results, result, wall_s = real_smoke.results, real_smoke.done, real_smoke.wall_s
    assert result.returncode == 0, result.stdout + result.stderr
    assert wall_s < 70
    assert "PASS" in result.stdout and "BREACH" not in result.stdout
    # Not a terminal: the live figures come as plain lines while each run is under load.
    live = [line for line in result.stdout.splitlines() if " req/s, p50 " in line]
    assert len(live) >= 2, result.stdout
    assert all("generator CPU" in line and "not ok:" in line for line in live)
    summary = json.loads((results / "summary.json").read_text())
    assert summary["schema"] == "fleetbench.smoke/1" and summary["passed"]
    assert set(summary["runs"]) == {"HS256", "ES256"}
    for alg, run in summary["runs"].items():
        assert run["schema"] == "fleetbench.summary/1"
        assert {r["scenario"] for r in run["requests"]} >= {
            "issuance", "verification", "expiry", "rejection",
        }  # fmt: skip
        assert run["expiry"]["expirations"] > 0  # the short token lifetime did its job
        # Regression: every scenario ran at weight 1, so the smoke profile was 1:1:1:1.
        assert_mix({n: e["runs"] for n, e in run["scenarios"].items()}, MIXED)
        assert run["corpus"]
        assert (results / alg / "summary.json").exists()
        assert (results / alg / "report.html").exists()
    assert (results / "report.html").read_text().count("<tr>") == len(summary["checks"]) + 1

    suites = ET.parse(results / "junit.xml").getroot()
    assert suites.tag == "testsuites"
    assert suites.get("tests") == str(len(summary["checks"])) and suites.get("failures") == "0"
    assert [s.get("name") for s in suites] == ["fleetbench smoke HS256", "fleetbench smoke ES256"]
    cases = suites.findall("testsuite/testcase")
    assert len(cases) == len(summary["checks"])
    assert "always on: accepted_invalid <= 0" in {c.get("name") for c in cases}
    assert not suites.findall(".//failure")

    # the smoke's summary diffs against itself, and against one of its runs (the other is gone)
    same = fleetbench("diff", str(results / "summary.json"), str(results / "summary.json"))
    assert same.returncode == 0, same.stdout
    part = fleetbench("diff", str(results / "summary.json"), str(results / "HS256/summary.json"))
    assert part.returncode == 1 and "ES256 verification telemetry" in part.stdout
    assert "MISSING" in part.stdout


@pytest.mark.slow
def test_smoke_breach_exits_1_and_names_it(tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(
        '[[threshold]]\nname = "impossible"\nscenario = "verification"\n'
        'endpoint = "telemetry"\np50_us = 1\n'
    )
    results = tmp_path / "smoke"
    result = fleetbench(
        "smoke", "--algs", "HS256", "--devices", "10", "--duration", "3",
        "--thresholds", str(strict), "--results", str(results), "--quiet",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((results / "summary.json").read_text())
    row = next(
        r
        for r in summary["runs"]["HS256"]["requests"]
        if (r["scenario"], r["endpoint"]) == ("verification", "telemetry")
    )
    breach = (
        f"impossible: p50_us {row['latency_us']['p50']:.0f} µs > 1 µs at verification telemetry"
    )
    assert f"BREACH HS256 {breach}" in result.stdout
    assert "FAIL 1 of 4 thresholds breached" in result.stdout
    (failure,) = ET.parse(results / "junit.xml").getroot().findall(".//failure")
    assert failure.get("message") == breach


def test_smoke_usage_and_setup_errors_exit_2(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for args, message in [
        (("--target", dead, "--admin-key", "k"), "cannot reach"),
        (("--target", dead, "--admin-key", "k", "--algs", "HS256"), "--algs"),
        (("--algs", "HS257"), "unknown algorithm 'HS257'"),
        (("--devices", "0"), "--devices"),
        (("--thresholds", str(tmp_path / "none.toml")), "cannot read thresholds file"),
    ]:
        result = fleetbench_here("smoke", *args, "--results", str(tmp_path / "r"))
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
