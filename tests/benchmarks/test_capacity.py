"""``python -m benchmarks.capacity`` runs end to end, briefly (its figures are the benchmark's, not
the test's): without wrk2 the constant-rate comparison is absent and says so; with a wrk2 binary
named by the ``WRK2`` variable (built from source: no registry has it, so CI has none) it compares
capacity's figure with wrk2's on the costly-login API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.capacity import NO_WRK2, _verdicts, compare_with_wrk2, endpoint_of, main
from benchmarks.service import ServiceError
from sim.sweep.capacity import CapacityConfig, parse_slo

pytestmark = pytest.mark.slow  # real targets, real Locust runs
BRIEF = ["--devices", "5", "--step-duration", "1", "--start-rate", "20", "--max-steps", "1"]
WRK2 = os.environ.get("WRK2")


def test_without_wrk2_the_comparison_is_absent_and_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--algs", "HS256", *BRIEF, "--narrow-steps", "0", "--wrk-duration", "1", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    (row,) = document["rows"]
    assert row["alg"] == "HS256" and row["wrk_rps"] > 0
    assert row["objective"]["steps"] == 1 and row["throughput"]["steps"] == 1
    assert document["wrk2"] == [] and document["wrk2_note"] == NO_WRK2


@pytest.mark.skipif(not WRK2, reason="WRK2 names no wrk2 binary (built from source, not in CI)")
def test_with_wrk2_capacity_is_compared_on_the_costly_login_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--algs", "HS256", *BRIEF, "--api", "drf-simplejwt", "--wrk2", str(WRK2)]
    assert main([*argv, "--slo", "p99=2s", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["rows"] == [] and document["wrk2_note"] is None
    (row,) = document["wrk2"]
    ours, theirs = row["capacity"], row["wrk2"]
    assert row["api"] == "drf-simplejwt" and ours["steps"] == 1 and theirs["steps"] == 1
    if ours["max_rate"] and theirs["max_rate"]:
        assert row["ratio"] == round(ours["max_rate"] / theirs["max_rate"], 3)
    else:
        assert row["ratio"] is None


def test_the_search_beside_wrk2_sends_the_request_wrk2_sends(tmp_path: Path) -> None:
    # It drove the profile's default endpoint (telemetry: a POST the target stores) while wrk2
    # read /api/data, and the two figures measured two different requests.
    config = CapacityConfig(
        algs=["HS256"], objective=parse_slo("p99=2s"), devices=5, step_duration_s=2.0,
        warmup_s=1.0, start_rate_rps=20.0, raise_steps=1, narrow_steps=0, results=tmp_path,
    )  # fmt: skip
    row = compare_with_wrk2("HS256", api="embedded", wrk2=None, config=config, log=print)
    capacity = json.loads((Path(row["results"]) / "capacity.json").read_text())
    (step,) = capacity["algorithms"]["HS256"]["steps"]
    summary = json.loads((Path(step["results"]) / "summary.json").read_text())
    judged = {r["endpoint"] for r in summary["requests"] if r["scenario"] == "verification"}
    assert judged == {"data"} and step["requests"] > 0


def test_a_profile_without_the_path_wrk2_sends_is_said() -> None:
    assert endpoint_of("fleetbench", "/api/data") == "data"
    with pytest.raises(ServiceError, match="no endpoint at /nowhere"):
        endpoint_of("fleetbench", "/nowhere")


def test_a_search_the_generator_stopped_says_floor_even_with_no_rate_met() -> None:
    # It said "no ratio (a search found no rate that met ...)", as if the target had broken it.
    stopped = {"max_rate": None, "floor": True, "generator_limited": True}
    found = {"max_rate": 5400.0, "floor": False, "generator_limited": False}
    row = {"alg": "ES256", "api": "embedded", "slo": "p99=50ms", "ratio": None}
    (line,) = _verdicts([{**row, "capacity": stopped, "wrk2": found}])
    assert line.startswith("ES256 on embedded: capacity's figure is a floor set by the generator")
    (line,) = _verdicts(
        [{**row, "capacity": {**found, "max_rate": 4860.0}, "wrk2": found, "ratio": 0.9}]
    )
    assert line == "ES256 on embedded: capacity / wrk2 = 0.90 (meets goal >= 0.8)"


def test_a_wrk2_that_is_no_program_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--wrk2", "/nonexistent/wrk2"])
    assert exited.value.code == 2
    assert "--wrk2 /nonexistent/wrk2: not an executable file" in capsys.readouterr().err


def test_wrk2_only_without_wrk2_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--wrk2-only"])
    assert exited.value.code == 2
    assert "--wrk2-only needs --wrk2 PATH" in capsys.readouterr().err
