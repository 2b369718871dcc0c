"""Load stages (``fleetbench run --stages``): steps parsed with one-line errors, and real runs
whose devices reporting, or whose rate, follow the steps, counted by the target."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.artefacts.summary_file import Summary, outcome_counts
from sim.errors import ConfigError
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark
from sim.shape.stages import parse_stages
from tests.commands import fleetbench_here

# Sends against what the stages asked: each device joining a ramp sends once at once (its share
# of a period is rounded up), and a device's last request may be cut off by the stop.
STAGE_TOLERANCE = 0.08


def test_steps_ramp_from_the_last_target() -> None:
    stages = parse_stages("30s:100,1m:1000,30s:0")
    assert stages.kind == "devices" and stages.total_s == 120 and stages.peak == 1000
    assert stages.value_at(15) == 50 and stages.value_at(60) == 550 and stages.value_at(105) == 500
    assert stages.cumulative(30) == 1500  # the area under the first ramp, device-seconds
    assert stages.first_above(49, 0) == pytest.approx(14.7, abs=0.01)  # device 49 joins
    rates = parse_stages("10s:100r,10s:100r")
    assert rates.kind == "rate" and rates.cumulative(20) == 1500
    assert rates.time_of_cumulative(500) == pytest.approx(10.0)
    assert rates.time_of_cumulative(1500) == pytest.approx(20.0)
    assert rates.time_of_cumulative(1501) is None  # never within the stages


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("30s", "is not DURATION:TARGET"),
        ("30s:10r,5s:4", "all steps are devices"),
        ("soon:10", "not a duration"),
        ("10s:-1", "must be 0 or more"),
        ("10s:1.5", "whole number of devices"),
        ("10s:0,5s:0", "every target is 0"),
    ],
)
def test_bad_steps_are_one_line_errors(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_stages(text)


def test_stages_and_the_options_they_replace_are_one_line_exit_2() -> None:
    for args, reason in (
        (("--stages", "5s:10", "--duration", "5"), "drop --duration"),
        (("--stages", "5s:100r", "--interval", "1"), "drop --interval"),
        (("--stages", "5s:10", "--devices", "20"), "drop --devices"),
        (("--stages", "5s:10", "--rate", "20"), "drop --rate"),
        (("--stages", "5s:x"), "is not a whole number"),
    ):
        result = fleetbench_here("run", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def _per_second(summary: Summary, second: int) -> int:
    timeline = summary["timeline"]
    start = timeline[0]["t"]
    return sum(sum(outcome_counts(row).values()) for row in timeline if row["t"] == start + second)


@pytest.mark.slow
def test_device_stages_ramp_the_devices_reporting(tmp_path: Path) -> None:
    interval_s = 0.2
    summary = run_benchmark(
        RunConfig(
            devices=10,
            alg="secret",
            token_alg="HS256",
            interval_s=interval_s,
            stages=parse_stages("3s:10,4s:10,3s:0"),
            duration_s=10,
            results=tmp_path,
        )
    )
    stages = summary["stages"]
    assert [(s["start"], s["end"]) for s in stages["steps"]] == [(0, 10), (10, 10), (10, 0)]
    marks = [p["stage"] for p in stages["timeline"]]  # per second: the step it falls in
    assert marks == sorted(marks) and set(marks) == {0, 1, 2} and 3 <= marks.count(1) <= 5
    # The flat stage: all 10 devices at 5 req/s each; the first second: about one device.
    assert 40 <= _per_second(summary, 5) <= 60
    assert _per_second(summary, 0) - 10 <= 15  # less the 10 setup token requests
    # The target's own count against what the stages asked (device-seconds / interval).
    received = summary["telemetry"]["received"]
    asked = summary["load"]["offered_requests"]
    assert received == pytest.approx(asked, rel=STAGE_TOLERANCE)
    assert asked == pytest.approx(350, rel=0.1)  # 15 + 40 + 15 device-seconds at 5 req/s
    report = (tmp_path / "report.html").read_text()
    assert 'id="stages"' in report and "asked by the stages" in report


@pytest.mark.slow
def test_rate_stages_are_the_open_model_at_a_changing_rate(tmp_path: Path) -> None:
    summary = run_benchmark(
        RunConfig(
            devices=8,
            alg="secret",
            token_alg="HS256",
            stages=parse_stages("2s:40r,4s:40r,2s:0r"),
            duration_s=8,
            results=tmp_path,
        )
    )
    assert summary["run"]["model"] == "open"
    account = summary["open_model"]
    received = summary["telemetry"]["received"]
    assert received == pytest.approx(account["asked_requests"], rel=STAGE_TOLERANCE)
    assert account["asked_requests"] == pytest.approx(240, rel=0.1)  # 40 + 160 + 40 requests
    assert 30 <= _per_second(summary, 4) <= 50  # the flat stage
    assert any("corrected_latency_us" in row for row in summary["requests"])
