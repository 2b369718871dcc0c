"""``fleetbench capacity --master --expect-workers 2`` with two ``fleetbench worker --stay`` on
loopback: every step is a run over both workers (they join each step's master again), its rate
split by their shares of the fleet, and each step's merged account is the sum of the workers'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.run.embedded import free_port
from tests.conftest import StartTarget
from tests.sim.conftest import Start

pytestmark = pytest.mark.slow  # a target, a master and two workers
RUN_LIMIT_S = 180


def test_each_step_runs_over_both_remote_workers(
    tmp_path: Path, start: Start, start_target: StartTarget
) -> None:
    port = free_port()
    # The workers first: each waits for a master, and joins every step's master in turn.
    for name in ("w1", "w2"):
        start(name, "worker", "--master", f"127.0.0.1:{port}", "--stay")
    target = start_target("HS256")
    results = tmp_path / "results"
    master = start(
        "master",
        "capacity", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "2",
        "--worker-wait", "90", "--target", target.url, "--algs", "HS256", "--devices", "12",
        "--start-rate", "24", "--step-duration", "3", "--warmup", "1", "--max-steps", "2",
        "--narrow-steps", "0", "--slo", "p99=1s", "--results", str(results), "--quiet",
        env={"FLEETBENCH_ADMIN_KEY": target.admin_key},
    )  # fmt: skip
    code = master.wait(timeout=RUN_LIMIT_S)
    assert code == 0, (tmp_path / "master.log").read_text()
    entry = json.loads((results / "capacity.json").read_text())["algorithms"]["HS256"]
    assert entry["max_rate"] is not None and len(entry["steps"]) == 2, entry
    for step in entry["steps"]:
        summary = json.loads((Path(step["results"]) / "summary.json").read_text())
        workers, account = step["workers"], summary["open_model"]
        assert len(workers) == 2 and all(w["devices"] == 6 for w in workers), workers
        # The merged account is the workers', count for count.
        assert sum(w["sent"] for w in workers) == account["sent_requests"] > 0
        assert sum(w["requests"] for w in workers) == summary["totals"]["requests"]
        # The step's rate split by shares of the fleet: each worker sent about half.
        for worker in workers:
            assert worker["sent"] / account["sent_requests"] == pytest.approx(0.5, abs=0.15)
        assert account["rate_rps"] == step["rate_rps"]
