"""``fleetbench capacity --workers N``: every step's open-model run over N worker processes on
this host, each named in the step's account, the merged account the sum of theirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.artefacts.codec import read_capacity
from tests.commands import fleetbench


@pytest.mark.slow
def test_capacity_runs_each_step_over_two_worker_processes(tmp_path: Path) -> None:
    results = tmp_path / "capacity"
    done = fleetbench(
        "capacity", "--algs", "HS256", "--slo", "p99=250ms", "--devices", "10",
        "--step-duration", "2", "--start-rate", "40", "--max-steps", "2", "--narrow-steps", "0",
        "--workers", "2", "--warmup", "1", "--results", str(results), "--quiet", timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    entry = read_capacity(results / "capacity.json")["algorithms"]["HS256"]
    assert entry["max_rate"] is not None, entry  # a figure, found over two workers
    assert entry["steps"] and entry["steps"][0]["rate_rps"] == 40.0
    for step in entry["steps"]:
        assert step["results"] is not None
        summary = json.loads((Path(step["results"]) / "summary.json").read_text())
        assert summary["run"]["locust_workers"] == 2
        account = summary["open_model"]
        assert account["rate_rps"] == step["rate_rps"]
        workers = step.get("workers", [])
        assert len(workers) == 2 and all(w["devices"] == 5 for w in workers), workers
        # The step's merged account is the sum of the workers', count for count.
        assert sum(w["sent"] for w in workers) == account["sent_requests"] > 0
        assert sum(w["requests"] for w in workers) == summary["totals"]["requests"]
        assert all(w["sent"] > 0 for w in workers)
