"""The open model (``fleetbench run --rate``): a stalled target shows as corrected latency while
the sent rate holds, and the fleet sends the rate it was asked for, counted by the target."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sim.account.measure import Measurements
from sim.account.offered import load_account
from sim.account.open_model import open_account
from sim.artefacts.summary_file import GeneratorCpu, Load, OpenModel
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark
from sim.shape.schedule import SendSchedule
from sim.thresholds import ThresholdsError, evaluate, parse_thresholds
from tests.commands import fleetbench, fleetbench_here
from tests.sim.conftest import serve_stalling_api

REPO = Path(__file__).resolve().parents[3]
STALL_PROFILE = REPO / "tests" / "apis" / "stall" / "profile.toml"
STALL_S = 2.0
# The sent count against the target's own count and against rate x time on the schedule: a
# device's last request may still be on its way at stop, and the schedule's phase is random.
SENT_TOLERANCE = 0.05


@pytest.fixture
def stalling_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve_stalling_api(monkeypatch, 3, STALL_S) as url:
        yield url


def test_a_stall_shows_as_corrected_latency_and_the_sent_rate_holds(
    stalling_api: str, tmp_path: Path
) -> None:
    # 5 devices at 20 req/s each: the 2 s stall holds one request per device (0.5 % of ~1,000),
    # so service-time p99 stays fast, while ~200 requests were due during it (about 20 %).
    result = fleetbench(
        "run", "--profile", str(STALL_PROFILE), "--target", stalling_api, "--devices", "5",
        "--rate", "100", "--duration", "10", "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "open model: corrected latency" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"]["model"] == "open"
    account = summary["open_model"]
    corrected, service = account["corrected_latency_us"], account["service_latency_us"]
    assert corrected["p99"] >= 0.5 * STALL_S * 1_000_000, account
    assert corrected["p99"] > 5 * service["p99"], account
    assert corrected["max"] <= (STALL_S + 2.0) * 1_000_000, account  # the stall, not more
    # The sent rate held: after the stall every device caught up on its schedule.
    assert account["shortfall"] <= SENT_TOLERANCE, account
    received = requests.get(f"{stalling_api}/stats", timeout=5).json()["requests"]
    assert received == pytest.approx(account["asked_requests"], rel=SENT_TOLERANCE)
    (row,) = [r for r in summary["requests"] if r["scenario"] == "verification"]
    assert row["corrected_latency_us"]["p99"] == corrected["p99"]
    (distribution,) = summary["corrected_latency_distribution"]
    assert distribution["points"][-1]["latency_us"] == corrected["max"]
    report = (tmp_path / "report.html").read_text()
    assert 'id="open-model-latency"' in report and "data corrected" in report
    # A threshold may read the corrected latency: the stall breaks it, the service time does not.
    limits = """
[[threshold]]
name = "as the fleet saw it"
endpoint = "data"
latency = "corrected"
p99_us = 500_000

[[threshold]]
name = "as the target served it"
endpoint = "data"
p99_us = 500_000
"""
    checks = {c.threshold.name: c for c in evaluate(parse_thresholds(limits, "t.toml"), summary)}
    corrected_check, service_check = (
        checks["as the fleet saw it"],
        checks["as the target served it"],
    )
    assert not corrected_check.passed and service_check.passed
    assert "latency=corrected" in corrected_check.threshold.selector.describe()  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_fleet_sends_the_rate_asked_over_two_processes(tmp_path: Path) -> None:
    rate, duration_s = 40.0, 6.0
    summary = run_benchmark(
        RunConfig(
            devices=8,
            alg="secret",
            token_alg="HS256",
            rate_rps=rate,
            duration_s=duration_s,
            workers=2,  # each process's devices send their share of the rate
            results=tmp_path,
        )
    )
    assert summary["run"]["locust_workers"] == 2
    account = summary["open_model"]
    assert account["rate_per_device_rps"] == pytest.approx(rate / 8)
    # Counted by the target itself (/admin/stats): every reading it received over the run.
    received = summary["telemetry"]["received"]
    asked = rate * account["mean_device_active_s"]
    assert received == pytest.approx(asked, rel=SENT_TOLERANCE), account
    # Rate x the run's duration (Locust's test start to stop, each device's setup included):
    # within 15 %, and never above rate x --duration.
    elapsed_s = summary["run"]["elapsed_s"]
    assert received == pytest.approx(rate * elapsed_s, rel=0.15), (received, elapsed_s)
    assert received <= rate * duration_s, (received, account)
    # What the fleet says it sent: the target's count, plus at most one in flight per device.
    assert received <= account["sent_requests"] <= received + 8, (received, account)


def test_corrected_latency_with_an_outcome_is_a_one_line_error() -> None:
    limits = '[[threshold]]\nlatency = "corrected"\noutcome = "ok"\np99_us = 1\n'
    with pytest.raises(ThresholdsError, match="line 2: latency = corrected"):
        parse_thresholds(limits, "t.toml")
    with pytest.raises(ThresholdsError, match="latency must be one of service, corrected"):
        parse_thresholds('[[threshold]]\nlatency = "intended"\np99_us = 1\n', "t.toml")


def test_rate_and_interval_together_are_one_line_exit_2() -> None:
    result = fleetbench_here("run", "--rate", "100", "--interval", "1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "--rate" in result.stderr and "--interval" in result.stderr
    bad = fleetbench_here("run", "--rate", "0")
    assert bad.returncode == 2 and "--rate" in bad.stderr and bad.stderr.count("\n") == 1


def test_a_device_behind_its_schedule_sends_at_once_and_the_lag_is_the_targets() -> None:
    start = time.perf_counter()
    schedule = SendSchedule(period_s=0.1, first_s=start, free_s=start)
    assert schedule.send(start + 0.002) == pytest.approx((0.002, 0.002))
    assert schedule.send(start + 0.003) is None  # a second request of the same task
    schedule.answered(start + 0.35)  # the target took 350 ms: slots 1 to 3 came meanwhile
    assert schedule.next_wait_s(start + 0.35) == 0.0  # behind: no sleep
    lag, generator_lag = schedule.send(start + 0.351) or (0.0, 0.0)
    assert lag == pytest.approx(0.251) and generator_lag == pytest.approx(0.001)
    schedule.answered(start + 0.352)
    assert schedule.next_wait_s(start + 0.352) == 0.0  # slot 2, still behind
    schedule.send(start + 0.352)
    schedule.answered(start + 0.353)
    schedule.next_wait_s(start + 0.353)
    schedule.send(start + 0.353)
    schedule.answered(start + 0.354)
    assert schedule.next_wait_s(start + 0.354) == pytest.approx(0.046)  # caught up at slot 4


def _account(generator_lag_us: float, service_us: float) -> tuple[OpenModel, Load]:
    """The open-model account of 200 paced requests sent 50 ms late, of which
    ``generator_lag_us`` the generator's own delay, each served in ``service_us``."""
    measurements = Measurements()
    measurements.counters["devices_started"] = 10
    for _ in range(200):
        measurements.request_started()
        measurements.record_send(50_000, generator_lag_us)
        measurements.record("data", "verification", "HS256", "ok", service_us,
                            corrected_us=service_us + 50_000)  # fmt: skip
    generator: GeneratorCpu = {"saturated": False, "processes": []}  # type: ignore[typeddict-item]
    load = load_account(measurements, interval_s=0.1, stopped=None, generator=generator,
                        target_cpu={"available": False}, answered=200)  # fmt: skip
    return open_account(measurements, load, rate_rps=100.0, interval_s=0.1), load


def test_late_sends_to_a_fast_target_name_the_generator_as_the_limit() -> None:
    account, load = _account(generator_lag_us=45_000, service_us=2_000)
    assert account["limit"] == "generator" and load["saturated"] == "generator"
    assert "the generator sent late on its own" in account["notes"][0]
    assert "the limit: the generator" in load["line"]
    # Late because the device waited on slow answers: the generator is not blamed.
    account, load = _account(generator_lag_us=500, service_us=60_000)
    assert account["limit"] is None and not account["notes"]


def test_a_closed_run_says_its_model_and_gains_nothing_else(
    real_mixed_summary: dict[str, Any],
) -> None:
    mixed_summary = real_mixed_summary
    assert mixed_summary["run"]["model"] == "closed"
    for key in ("open_model", "corrected_latency_distribution", "stages"):
        assert key not in mixed_summary
    assert not any("corrected_latency_us" in row for row in mixed_summary["requests"])
    assert "rate_rps" not in mixed_summary["run"]["parameters"]
    assert "stages" not in mixed_summary["run"]["parameters"]
    assert mixed_summary["load"]["offered_rps"] == 10 / 0.1  # devices / interval, as before
