"""The open model over remote workers: ``fleetbench run --master --rate`` or ``--stages`` and two
``fleetbench worker`` processes on loopback against a real target. The fleet-wide rate is split by
each worker's share of the devices, and the merged account is the sum of the workers'."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from sim.run.config import RunConfig
from sim.run.embedded import EmbeddedTarget, free_port
from sim.run.runner import run_benchmark
from sim.shape.stages import parse_stages
from tests.conftest import StartTarget
from tests.sim.conftest import Start

RUN_LIMIT_S = 120  # every wait below is bounded
SENT_TOLERANCE = 0.1  # the target's count against what was asked (two generators, a busy host)


def _run(
    tmp_path: Path, start: Start, target: EmbeddedTarget, *load: str
) -> tuple[subprocess.Popen[bytes], list[subprocess.Popen[bytes]]]:
    port = free_port()
    master = start(
        "master",
        "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "2",
        "--worker-wait", "90", "--target", target.url, "--alg", "secret", "--devices", "12",
        "--results", str(tmp_path / "results"), "--quiet", *load,
        env={"FLEETBENCH_ADMIN_KEY": target.admin_key},
    )  # fmt: skip
    workers = [start(name, "worker", "--master", f"127.0.0.1:{port}") for name in ("w1", "w2")]
    return master, workers


def _received(target: EmbeddedTarget) -> int:
    response = requests.get(
        f"{target.url}/admin/stats",
        headers={"Authorization": f"Bearer {target.admin_key}"},
        timeout=10,
    )
    received: int = response.json()["totals"]["received"]
    return received


def _summary(tmp_path: Path, master: subprocess.Popen[bytes], code: int) -> dict[str, Any]:
    assert master.wait(timeout=RUN_LIMIT_S) == code, (tmp_path / "master.log").read_text()
    summary: dict[str, Any] = json.loads((tmp_path / "results" / "summary.json").read_text())
    return summary


def _merged_exactly(summary: dict[str, Any]) -> None:
    """The open model's merged account is the sum of the workers', count for count."""
    account, workers = summary["open_model"], summary["cluster"]["workers"]
    assert all(w["devices"] == 6 and w["scheduled_sends"] > 0 for w in workers)
    assert sum(w["scheduled_sends"] for w in workers) == account["sent_requests"]
    # Each send records its generator lag once: the merged lag histogram counts every send.
    assert account["generator_lag_us"]["count"] == account["sent_requests"]
    corrected = account["corrected_latency_us"]["count"]
    assert sum(w["corrected_requests"] for w in workers) == corrected > 0
    assert sum(w["requests"] for w in workers) == summary["totals"]["requests"]
    assert all(w["generator_lag_p99_us"] is not None for w in workers)


def test_a_rate_is_split_by_devices_and_a_lagging_worker_is_named(
    tmp_path: Path, start: Start, start_target: StartTarget
) -> None:
    """Before, --rate with --master was refused. One worker frozen for 1.5 s mid-run sends late
    on its own (its generator's lag, not the target's): it is named; the other is not."""
    target = start_target("HS256")
    rate = 48.0
    master, (frozen, _) = _run(tmp_path, start, target, "--rate", str(rate), "--duration", "10")
    deadline = time.monotonic() + RUN_LIMIT_S
    while _received(target) == 0:  # under way
        assert master.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)
    (locust,) = psutil.Process(frozen.pid).children()
    locust.suspend()
    time.sleep(1.5)
    locust.resume()
    summary = _summary(tmp_path, master, 0)

    account = summary["open_model"]
    _merged_exactly(summary)
    # Each device sent the fleet-wide rate over the whole fleet (12), not over its shard (6):
    # the target's own count is the rate asked, whichever worker sent it.
    assert account["rate_per_device_rps"] == pytest.approx(rate / 12)
    received = _received(target)
    assert received == pytest.approx(rate * account["mean_device_active_s"], rel=SENT_TOLERANCE)
    for worker in summary["cluster"]["workers"]:
        share = worker["scheduled_sends"] / account["sent_requests"]
        assert share == pytest.approx(0.5, abs=0.1), summary["cluster"]

    workers = {w["pid"]: w for w in summary["cluster"]["workers"]}
    late = workers[locust.pid]
    (other,) = [w for pid, w in workers.items() if pid != locust.pid]
    assert late["lagging"] and late["generator_lag_p99_us"] >= account["generator_lag_limit_us"]
    assert other["generator_lag_p99_us"] < late["generator_lag_p99_us"]
    assert any(late["id"] in note for note in account["notes"])
    assert f"{late['host']} pid {late['pid']} 6 devices" in (tmp_path / "master.log").read_text()
    assert "LAGGING" in (tmp_path / "master.log").read_text()


def test_rate_stages_run_over_remote_workers(
    tmp_path: Path, start: Start, start_target: StartTarget
) -> None:
    target = start_target("HS256")
    master, _ = _run(tmp_path, start, target, "--stages", "3s:24r,4s:48r")
    summary = _summary(tmp_path, master, 0)
    _merged_exactly(summary)
    account = summary["open_model"]
    assert account["shortfall"] < SENT_TOLERANCE, account
    # Asked: 24 req/s for 3 s, then 48 for 4 s (less each device's setup at the start).
    assert _received(target) == pytest.approx(account["asked_requests"], rel=SENT_TOLERANCE)
    assert account["asked_requests"] <= 24 * 3 + 48 * 4


@pytest.mark.slow
def test_rate_stages_over_local_workers_keep_the_master_s_time_zero(tmp_path: Path) -> None:
    """Before, each local worker counted the stages from its own start, a second or more after
    the master's (Locust's first spawn): the stages ran late and lost their last second to the
    master's stop, 30 % short with the target idle."""
    summary = run_benchmark(
        RunConfig(
            devices=12, alg="secret", token_alg="HS256", stages=parse_stages("3s:24r,4s:48r"),
            duration_s=7, workers=2, results=tmp_path,
        )
    )  # fmt: skip
    account = summary["open_model"]
    assert account["shortfall"] < SENT_TOLERANCE, account
    received = summary["telemetry"]["received"]
    assert received == pytest.approx(account["asked_requests"], rel=SENT_TOLERANCE)


def test_an_expiry_storm_runs_over_remote_workers(tmp_path: Path, start: Start) -> None:
    """Before, a storm with --master was refused. The embedded target on the master's host; the
    fleet's tokens expire together and every device, whichever worker drives it, recovers."""
    port = free_port()
    master = start(
        "master",
        "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "2",
        "--worker-wait", "90", "--scenario", "expiry-storm", "--token-ttl", "3", "--leeway", "0",
        "--token-alg", "HS256", "--alg", "secret", "--devices", "12", "--interval", "0.25",
        "--duration", "9", "--results", str(tmp_path / "results"), "--quiet",
    )  # fmt: skip
    for name in ("w1", "w2"):
        start(name, "worker", "--master", f"127.0.0.1:{port}")
    summary = _summary(tmp_path, master, 0)
    storm = summary["storms"]["expiry"]
    assert storm["devices"] == storm["devices_refused"] == storm["devices_recovered"] == 12
    assert storm["burst"]["requests"] - storm["burst"]["refusals"] == 12
    workers = summary["cluster"]["workers"]
    assert [w["devices"] for w in workers] == [6, 6]
    assert sum(w["requests"] for w in workers) == summary["totals"]["requests"]
