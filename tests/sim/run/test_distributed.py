"""A fleet over remote workers: ``fleetbench run --master`` and ``fleetbench worker`` as separate
real processes on loopback, against a real target; every process is killed in teardown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
import requests

from sim.artefacts.codec import read_summary
from sim.artefacts.summary_file import Summary
from sim.errors import ConfigError
from sim.output.table import refused_line
from sim.run.distributed import Address, apply_cluster, cluster_section, parse_address
from sim.run.embedded import EmbeddedTarget, free_port
from tests.commands import fleetbench_here
from tests.conftest import StartTarget
from tests.sim.conftest import Start, serve_broken_target

RUN_LIMIT_S = 120  # every wait below is bounded


def _stats(target: EmbeddedTarget) -> dict[str, Any]:
    response = requests.get(
        f"{target.url}/admin/stats",
        headers={"Authorization": f"Bearer {target.admin_key}"},
        timeout=10,
    )
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()
    return stats


def _wait_for_load(target: EmbeddedTarget, master: subprocess.Popen[bytes]) -> None:
    """Until the target has received telemetry: the run has started."""
    deadline = time.monotonic() + RUN_LIMIT_S
    while _stats(target)["totals"]["received"] == 0:
        assert master.poll() is None, "the master ended before the run started"
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)


def _master(
    start: Start, target: EmbeddedTarget, results: Path, port: int, *extra: str
) -> subprocess.Popen[bytes]:
    return start(
        "master",
        "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "2",
        "--worker-wait", "90", "--target", target.url, "--alg", "secret",
        "--devices", "12", "--interval", "0.2", "--results", str(results), "--quiet", *extra,
        env={"FLEETBENCH_ADMIN_KEY": target.admin_key},
    )  # fmt: skip


def _locust_requests(folder: Path) -> int:
    entries = json.loads((folder / "locust_stats.json").read_text())
    return sum(e["num_requests"] for e in entries)


def test_master_and_two_workers_account_exactly_and_a_late_worker_gets_nothing(
    tmp_path: Path, start: Start, start_target: StartTarget
) -> None:
    target = start_target("HS256")
    port = free_port()
    results = tmp_path / "results"
    master = _master(start, target, results, port, "--duration", "8")
    for name in ("w1", "w2"):
        start(name, "worker", "--master", f"127.0.0.1:{port}")
    _wait_for_load(target, master)
    late = start("late", "worker", "--master", f"127.0.0.1:{port}")
    assert master.wait(timeout=RUN_LIMIT_S) == 0, (tmp_path / "master.log").read_text()
    assert late.wait(timeout=30) == 0  # the master ended it too

    summary = json.loads((results / "summary.json").read_text())
    assert read_summary(results / "summary.json")["cluster"] == summary["cluster"]  # its type
    assert summary["verdict"]["passed"] and (results / "report.html").stat().st_size > 10_000
    cluster = summary["cluster"]
    assert not cluster["degraded"] and cluster["dealt"] == cluster["fleet_devices"] == 12
    workers = cluster["workers"]
    assert len(workers) == 3
    # The late worker joined a running fleet: no device was left for it.
    (joined_late,) = [w for w in workers if w["late"]]
    assert joined_late["devices"] == 0 and joined_late["requests"] == 0
    assert all(w["devices"] > 0 for w in workers if w["requests"])
    assert sum(w["devices"] for w in workers) == 12
    totals = summary["totals"]
    assert totals["devices"] == 12 and totals["users_without_device"] == 0
    # The merged account is exactly what the workers sent, and what Locust's own stats counted.
    assert sum(w["requests"] for w in workers) == totals["requests"] > 0
    assert totals["requests"] == _locust_requests(results)
    assert totals["started"] == totals["requests"] + totals["in_flight_at_stop"]
    # The target's own count: every acknowledged reading was one of ours, none from a device
    # run twice (two workers driving one device would repeat its seq numbers).
    stats = _stats(target)["totals"]
    telemetry = {r["endpoint"]: r for r in summary["requests"] if r["scenario"] == "verification"}
    acknowledged = telemetry["telemetry"]["count"]
    assert summary["telemetry"]["acknowledged"] == acknowledged
    assert acknowledged <= stats["received"] <= acknowledged + totals["in_flight_at_stop"]
    assert stats["devices"] == 12 and stats["duplicates"] == 0
    # CPU sampled while each ran load (never, for the late one).
    assert all(w["cpu_samples"] > 0 and w["peak_rss_bytes"] > 0 for w in workers if w["devices"])
    assert joined_late["cpu_samples"] == 0
    # The workers make the load: their CPU is the generator's (the load account judges it).
    roles = [p["role"] for p in summary["generator"]["processes"]]
    assert roles[0] == "master" and sum(r.startswith("worker@") for r in roles) == 2
    assert "workers: 3, 12 of 12 devices dealt" in (tmp_path / "master.log").read_text()
    report = (results / "report.html").read_text()
    assert 'id="cluster"' in report and "joined late: no devices" in report


def test_a_worker_killed_mid_run_is_named_and_fails_the_run(
    tmp_path: Path, start: Start, start_target: StartTarget
) -> None:
    target = start_target("HS256")
    port = free_port()
    results = tmp_path / "results"
    master = _master(start, target, results, port, "--duration", "12")
    doomed = start("w1", "worker", "--master", f"127.0.0.1:{port}")
    start("w2", "worker", "--master", f"127.0.0.1:{port}")
    _wait_for_load(target, master)
    time.sleep(1)
    (locust,) = psutil.Process(doomed.pid).children()
    killed_at = time.time()
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its Locust, as a lost host
    assert master.wait(timeout=RUN_LIMIT_S) == 1, (tmp_path / "master.log").read_text()

    summary = json.loads((results / "summary.json").read_text())
    cluster = summary["cluster"]
    assert cluster["degraded"] and cluster["lost_workers"] == 1
    (lost,) = [w for w in cluster["workers"] if w["lost"]]
    (alive,) = [w for w in cluster["workers"] if not w["lost"]]
    assert lost["pid"] == locust.pid and alive["pid"] != locust.pid
    assert lost["devices"] > 0 and len(lost["lost_device_ids"]) == lost["devices"]
    assert lost["devices"] + alive["devices"] == 12
    assert lost["lost_as"] == "missing"  # Locust's heartbeat noticed
    assert not lost["account_complete"] and lost["returned_at_s"] is None
    started_at = summary["run"]["started_at"]
    assert 0 < lost["lost_at_s"] - (killed_at - started_at) < 10  # within a few seconds
    first, last = lost["affected_s"]
    assert first <= killed_at - started_at and last == pytest.approx(
        summary["run"]["elapsed_s"], 0.1
    )
    assert not summary["verdict"]["passed"]
    assert any(lost["id"] in f and "lost" in f for f in summary["verdict"]["failures"])
    assert "FAIL" in (tmp_path / "master.log").read_text()
    report = (results / "report.html").read_text()
    assert f"{lost['id']}</td>" in report and "lost (missing) at" in report


def test_a_paused_worker_that_comes_back_is_named_with_its_silent_seconds(
    tmp_path: Path, start: Start, start_target: StartTarget
) -> None:
    """A worker frozen for six seconds (a network gone and back): missing, then back with its
    whole account; the run is degraded (its devices were silent), the totals are complete."""
    target = start_target("HS256")
    port = free_port()
    results = tmp_path / "results"
    master = _master(start, target, results, port, "--duration", "14")
    paused = start("w1", "worker", "--master", f"127.0.0.1:{port}")
    start("w2", "worker", "--master", f"127.0.0.1:{port}")
    _wait_for_load(target, master)
    (locust,) = psutil.Process(paused.pid).children()
    locust.suspend()
    time.sleep(6)
    locust.resume()
    assert master.wait(timeout=RUN_LIMIT_S) == 1, (tmp_path / "master.log").read_text()

    summary = json.loads((results / "summary.json").read_text())
    (back,) = [w for w in summary["cluster"]["workers"] if w["lost"]]
    assert back["pid"] == locust.pid and back["lost_as"] == "missing"
    assert back["account_complete"] and back["returned_at_s"] > back["lost_at_s"]
    first, last = back["affected_s"]
    assert 3 < last - first < 12
    totals = summary["totals"]
    assert sum(w["requests"] for w in summary["cluster"]["workers"]) == totals["requests"]
    stats = _stats(target)["totals"]
    acknowledged = summary["telemetry"]["acknowledged"]
    assert acknowledged <= stats["received"] <= acknowledged + totals["in_flight_at_stop"]
    assert any("came back" in f for f in summary["verdict"]["failures"])


def test_first_token_requests_of_workers_starting_together_are_spread(
    tmp_path: Path, start: Start
) -> None:
    """Twenty devices spawned at once over two workers: without the start spread all their
    token requests arrive in one burst."""
    port = free_port()
    with serve_broken_target("tests.sim.stamping_target:app") as url:
        master = start(
            "master", "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "2",
            "--worker-wait", "90", "--target", url, "--alg", "secret", "--devices", "20",
            "--spawn-rate", "1000", "--interval", "10", "--duration", "4", "--quiet",
            "--results", str(tmp_path / "results"), env={"FLEETBENCH_ADMIN_KEY": "any"},
        )  # fmt: skip
        for name in ("w1", "w2"):
            start(name, "worker", "--master", f"127.0.0.1:{port}")
        master.wait(timeout=RUN_LIMIT_S)
        arrivals = sorted(requests.get(f"{url}/arrivals", timeout=10).json()["arrivals"])
    assert len(arrivals) == 20, (tmp_path / "master.log").read_text()
    assert arrivals[-1] - arrivals[0] >= 0.5
    busiest = max(sum(1 for t in arrivals if s <= t < s + 0.1) for s in arrivals)
    assert busiest <= 10, arrivals


def test_no_workers_is_one_line_and_exit_2(tmp_path: Path, start: Start) -> None:
    port = free_port()
    master = start(
        "master", "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "1",
        "--worker-wait", "2", "--devices", "2", "--alg", "secret", "--quiet",
        "--results", str(tmp_path / "results"),
    )  # fmt: skip
    assert master.wait(timeout=RUN_LIMIT_S) == 2
    output = (tmp_path / "master.log").read_text().strip()
    assert output == (
        f"fleetbench: error: 1 workers did not join 127.0.0.1:{port} within 2 s "
        "(fleetbench worker --master HOST:PORT on each host)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--master"], "--master needs --expect-workers N"),
        (["run", "--expect-workers", "2"], "--expect-workers needs --master"),
        (["run", "--master", "--expect-workers", "2", "--workers", "2"], "drop it"),
        (["run", "--master", "--expect-workers", "1", "--bind", "h:x"], "port must be a number"),
        (["worker", "--master", ":5557"], "--master needs a host"),
        (["run", "--master", "--expect-workers", "1", "--rate", "50", "--interval", "1"], "--rate"),
    ],
)
def test_bad_cluster_options_are_one_line(args: list[str], message: str) -> None:
    done = fleetbench_here(*args)  # refused before anything starts: in process
    assert done.returncode == 2
    assert done.stderr.startswith("fleetbench: error:") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_addresses() -> None:
    assert parse_address("10.0.0.5", "--master") == Address("10.0.0.5", 5557)
    assert parse_address("gen-1:6000", "--master") == Address("gen-1", 6000)
    assert parse_address("[::1]:6000", "--master") == Address("::1", 6000)
    assert str(Address("::1", 6000)) == "[::1]:6000"
    with pytest.raises(ConfigError, match="out of range"):
        parse_address("h:70000", "--bind")


def test_a_worker_whose_users_had_no_device_or_whose_account_did_not_open_fails_the_run() -> None:
    """Before, a worker given users but no devices (another took them) was not a failure."""
    now = 1_000.0
    raw = {
        "fleet_devices": 12, "dealt": 12, "started": now, "stopped": now + 10,
        "workers": [
            {"id": "a_1", "devices": 12, "users": 6, "final": True, "cpu": [1.0]},
            {"id": "b_2", "devices": 0, "users": 6, "final": True, "cpu": [1.0]},
            {"id": "c_3", "devices": 0, "users": 0, "late": True},
            {"id": "d_4", "devices": 0, "users": 0, "final": True, "unauthentic": 2},
        ],
        "refused": [{"id": "e_5", "host": "e", "reason": "its cluster key is not the master's"}],
    }  # fmt: skip
    summary = cast(Summary, {"verdict": {"failures": []}, "load": {}})
    cluster = cluster_section(raw)
    apply_cluster(summary, cluster)
    assert summary["verdict"]["failures"] == [
        "worker b_2 was given 6 users but dealt 0 devices: 6 ran without a device",
        "worker d_4: 2 of its messages failed authentication and were dropped: its account is "
        "incomplete",
    ]
    assert summary["verdict"]["label"] == "FAIL"
    assert cluster["refused"] == raw["refused"]  # named, and not a failure: it got nothing
    assert refused_line(cluster["refused"]) == (
        "workers refused (given nothing): e_5 (its cluster key is not the master's)"
    )
