"""Overload is visible (issue 16): a fleet that cannot get its answers in time reports the load it
asked for against the load it got, the requests unanswered at stop and the side that gave out;
a fleet that keeps up reports no shortfall. Real targets, real Locust, short bounded runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sim.artefacts.summary_file import Summary
from sim.output.table import print_summary
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark
from sim.thresholds import evaluate, parse_thresholds
from tests.sim.conftest import serve_broken_target

pytestmark = pytest.mark.slow  # each test starts a server, a run or the command

REPO = Path(__file__).resolve().parents[3]
DEVICES = 20
SLOW_S = 0.5  # the slow target's answer time, five times the fleet's 0.1 s interval


def _printed(summary: Summary) -> str:
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=200))
    return out.getvalue()


def test_a_slow_target_is_reported_as_the_limit(tmp_path: Path) -> None:
    results = tmp_path / "slow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    with serve_broken_target("tests.sim.slow_target:app") as url:
        # Through the CLI, with two Locust workers: the in-flight count crosses the worker wire.
        done = subprocess.run(
            [sys.executable, "-m", "sim", "run", "--target", url, "--admin-key", "unused-here",
             "--devices", str(DEVICES), "--interval", "0.1", "--duration", "5", "--workers", "2",
             "--alg", "secret", "--results", str(results), "--quiet"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    # Overloaded is not failed: the exit status stays 0 unless a threshold or correctness rule fails
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS (overloaded)" in done.stdout
    assert "asked 200 req/s" in done.stdout
    summary = json.loads((results / "summary.json").read_text())
    load, totals = summary["load"], summary["totals"]
    # Each device can have one answer per 0.5 s, not one per 0.1 s: about 80 % short.
    assert load["offered_rps"] == 200.0
    assert 0.6 < load["shortfall"] < 0.95, load
    assert load["delivered_rps"] < 80
    # At stop nearly every device was waiting on its half-second answer; never more than one each.
    assert DEVICES // 2 <= load["in_flight_at_stop"] <= DEVICES, load
    assert totals["started"] == totals["requests"] + totals["in_flight_at_stop"]
    assert totals["in_flight_at_stop"] == load["in_flight_at_stop"]
    assert load["overloaded"] and summary["verdict"]["label"] == "PASS (overloaded)"
    assert summary["verdict"]["passed"] and summary["verdict"]["overloaded"]
    # Neither side is busy: the generator idles while the target sleeps. The target is the limit,
    # and the notes say it is slow without being busy.
    assert not summary["generator"]["saturated"]
    assert summary["target_cpu"]["source"] == "metrics"  # prometheus_client's process metrics
    assert summary["target_cpu"]["available"] and not summary["target_cpu"]["saturated"]
    assert load["saturated"] == "target"
    assert any("slow without being busy" in note for note in load["notes"]), load["notes"]
    assert f"{load['in_flight_at_stop']} requests unanswered at stop" in load["line"]
    assert "the limit: the target" in load["line"]

    # The thresholds for it fail the run past them, with the measured value and the limit.
    checks = evaluate(
        parse_thresholds("[run]\nmax_shortfall = 0.05\nmax_in_flight = 5\n", "team.toml"), summary
    )
    breaches = [line for c in checks if not c.passed for line in c.breaches()]
    assert breaches == [
        f"run: max_shortfall {load['shortfall']:.4g} > 0.05 at run",
        f"run: max_in_flight {load['in_flight_at_stop']} > 5 at run",
    ]


def test_a_run_that_keeps_up_reports_no_shortfall(tmp_path: Path) -> None:
    summary = run_benchmark(
        RunConfig(
            devices=10, duration_s=5, interval_s=0.5, token_alg="HS256", results=tmp_path / "ok"
        )
    )
    load, totals = summary["load"], summary["totals"]
    assert load["offered_rps"] == 20.0
    assert load["shortfall"] is not None
    assert load["shortfall"] <= 0.05, load
    assert 18 <= load["delivered_rps"] <= 24, load
    assert 0 <= load["in_flight_at_stop"] <= 1  # at 0.5 s pacing, answers take milliseconds
    assert totals["started"] == totals["requests"] + totals["in_flight_at_stop"]
    assert not load["overloaded"] and load["saturated"] is None
    assert summary["verdict"]["label"] == "PASS"
    # The embedded target's process is sampled like the generator's.
    target_cpu = summary["target_cpu"]
    assert target_cpu["source"] == "psutil" and target_cpu["samples"] >= 5
    assert target_cpu["processes"][0]["role"] == "server"
    assert not target_cpu["saturated"]
    assert "saturation_rule" in summary["generator"]
    printed = _printed(summary)
    assert "load: asked 20 req/s, served" in printed and "unanswered at stop" in printed
    assert "PASS (overloaded)" not in printed and "PASS" in printed
    checks = evaluate(parse_thresholds("[run]\nmax_shortfall = 0.05\n", "team.toml"), summary)
    assert all(c.passed for c in checks)
