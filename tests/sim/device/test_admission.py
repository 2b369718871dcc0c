"""Who joins a ``fleetbench run --master``: a real master, real ``fleetbench worker`` processes and
hand-made peers speaking Locust's messages (pyzmq, ``locust.rpc.Message``) on loopback, against a
real target. Only a worker holding the cluster key is dealt anything, and only sealed."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sim.device.seal import KEY_ENV, new_key_text
from sim.fleet.model import Fleet, make_fleet, save_fleet
from sim.run.embedded import free_port
from tests.sim.conftest import CLUSTER_KEY, Start, serve_broken_target
from tests.sim.wire_relay import wire_relay

RUN_LIMIT_S = 120  # every wait below is bounded


def _fleet(tmp_path: Path) -> tuple[Fleet, Path]:
    fleet = make_fleet(12, "secret")
    path = tmp_path / "fleet.json"
    save_fleet(fleet, path)
    return fleet, path


def _master(
    start: Start,
    url: str,
    fleet: Path,
    results: Path,
    port: int,
    workers: int,
    duration_s: int,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A master whose target accepts every token: an honest run reads FAIL (accepted_invalid)."""
    return start(
        "master",
        "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", str(workers),
        "--worker-wait", "60", "--target", url, "--alg", "secret", "--fleet", str(fleet),
        "--interval", "0.2", "--duration", str(duration_s), "--results", str(results), "--quiet",
        "--scenario", "verification=3,rejection=1",
        env={"FLEETBENCH_ADMIN_KEY": "any", **(env or {})},
    )  # fmt: skip


def _secrets_in(data: bytes, fleet: Fleet) -> list[str]:
    return [d.id for d in fleet.devices if d.secret.encode() in data or d.id.encode() in data]


def _locust_requests(folder: Path) -> int:
    return sum(e["num_requests"] for e in json.loads((folder / "locust_stats.json").read_text()))


def _peer(tmp_path: Path, port: int, mode: str, run_s: float) -> tuple[subprocess.Popen[str], Path]:
    """The hand-made peer (tests/sim/rogue_peer.py), once the master has answered it."""
    out = tmp_path / f"{mode}.json"
    peer = subprocess.Popen(
        [sys.executable, "-m", "tests.sim.rogue_peer", "--port", str(port), "--mode", mode,
         "--out", str(out), "--run-s", str(run_s)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, KEY_ENV: CLUSTER_KEY},
    )  # fmt: skip
    assert peer.stdout is not None
    assert peer.stdout.readline().strip() == "acknowledged"  # bounded: it gives up after 60 s
    return peer, out


def _run_with_peer(
    tmp_path: Path, start: Start, mode: str, workers: int, run_s: float
) -> tuple[Fleet, dict[str, Any], dict[str, Any]]:
    """A master, the hand-made peer, then an honest ``fleetbench worker``; the run fails (its
    target accepts every token, or a worker is lost). The fleet, what the peer got, the summary."""
    fleet, fleet_path = _fleet(tmp_path)
    port = free_port()
    results = tmp_path / "results"
    with serve_broken_target() as url:
        master = _master(start, url, fleet_path, results, port, workers, duration_s=5)
        peer, out = _peer(tmp_path, port, mode, run_s)
        try:
            honest = start("honest", "worker", "--master", f"127.0.0.1:{port}")
            assert master.wait(timeout=RUN_LIMIT_S) == 1, (tmp_path / "master.log").read_text()
            assert honest.wait(timeout=30) == 0
            assert peer.wait(timeout=RUN_LIMIT_S) == 0
        finally:
            peer.kill()
            peer.wait()
    summary: dict[str, Any] = json.loads((results / "summary.json").read_text())
    assert _locust_requests(results) == summary["totals"]["requests"]
    return fleet, json.loads(out.read_text()), summary


def test_a_rogue_peer_gets_no_device_and_cannot_forge_the_verdict(
    tmp_path: Path, start: Start
) -> None:
    """The review's rogue: ``client_ready``, a claim for a million devices, and later a forged
    all-ok account. Before: it took every device's secret, the honest worker got none, and its
    account turned a FAIL run into PASS."""
    fleet, got, summary = _run_with_peer(tmp_path, start, "rogue", workers=1, run_s=12)
    # It was acknowledged (so a Locust could go on to prove a key) and told nothing else.
    assert set(got["types"]) == {"ack"}
    frames = b"".join(base64.b64decode(f) for f in got["frames"])
    assert _secrets_in(frames, fleet) == []
    cluster = summary["cluster"]
    (worker,) = cluster["workers"]  # the rogue was never registered
    assert worker["devices"] == worker["users"] == 12 and cluster["dealt"] == 12
    assert cluster["refused"] == [
        {"id": got["id"], "host": "rogue", "reason": "it never proved it holds the cluster key"}
    ]
    # The honest FAIL stands; the forged 5,000 ok requests are nowhere.
    assert not summary["verdict"]["passed"]
    assert any("accepted_invalid" in f for f in summary["verdict"]["failures"])
    totals = summary["totals"]
    assert totals["requests"] == worker["requests"] > 0
    assert totals["users_without_device"] == 0
    assert f"workers refused (given nothing): {got['id']}" in (tmp_path / "master.log").read_text()


def test_a_worker_with_the_wrong_key_is_refused_with_one_line_on_both_sides(
    tmp_path: Path, start: Start
) -> None:
    fleet, fleet_path = _fleet(tmp_path)
    port = free_port()
    with serve_broken_target() as url:
        master = start(
            "master",
            "run", "--master", "--bind", f"127.0.0.1:{port}", "--expect-workers", "1",
            "--worker-wait", "8", "--target", url, "--alg", "secret", "--fleet", str(fleet_path),
            "--duration", "2", "--results", str(tmp_path / "results"), "--quiet",
            env={"FLEETBENCH_ADMIN_KEY": "any"},
        )  # fmt: skip
        worker = subprocess.run(
            [sys.executable, "-m", "sim", "worker", "--master", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=RUN_LIMIT_S,
            env={**os.environ, KEY_ENV: new_key_text()},
        )  # fmt: skip
        assert master.wait(timeout=RUN_LIMIT_S) == 2
    assert worker.returncode == 2
    assert worker.stderr.strip() == (
        "fleetbench: error: the master refused this worker: its cluster key is not the master's"
    )
    output = (tmp_path / "master.log").read_text()
    assert CLUSTER_KEY not in output  # the master's key was the operator's: never printed
    line = output.strip().splitlines()[-1]
    assert line.startswith("fleetbench: error: 1 workers did not join")
    assert "workers refused (given nothing): " in line
    assert line.endswith("(its cluster key is not the master's)")
    assert _secrets_in((worker.stdout + worker.stderr).encode(), fleet) == []


def test_a_worker_with_the_key_gets_no_more_devices_than_it_was_given_users(
    tmp_path: Path, start: Start
) -> None:
    """A peer that holds the key and asks for a million devices: it is capped at its users,
    and the honest worker gets the rest."""
    # It never reports: lost, and the run fails; what matters is what it was dealt.
    _, got, summary = _run_with_peer(tmp_path, start, "greedy", workers=2, run_s=15)
    assert got["users"] == 6 and len(got["dealt"]) == 6
    workers = {w["id"]: w for w in summary["cluster"]["workers"]}
    assert workers[got["id"]]["devices"] == 6
    (honest,) = [w for i, w in workers.items() if i != got["id"]]
    assert honest["devices"] == 6 and honest["requests"] > 0
    assert summary["cluster"]["dealt"] == 12


def test_the_wire_between_worker_and_master_holds_no_device_secret(
    tmp_path: Path, start: Start
) -> None:
    """Every byte between a worker and its master, captured at a relay on the path."""
    fleet, fleet_path = _fleet(tmp_path)
    port = free_port()
    results = tmp_path / "results"
    with serve_broken_target() as url, wire_relay(port) as relay:
        master = _master(start, url, fleet_path, results, port, workers=1, duration_s=4)
        start("w1", "worker", "--master", f"127.0.0.1:{relay.port}")
        assert master.wait(timeout=RUN_LIMIT_S) == 1, (tmp_path / "master.log").read_text()
        captured = bytes(relay.captured)
    summary = json.loads((results / "summary.json").read_text())
    (worker,) = summary["cluster"]["workers"]
    assert worker["devices"] == 12 and worker["requests"] > 0  # it ran, through the relay
    assert len(captured) > 10_000
    assert _secrets_in(captured, fleet) == []
    assert CLUSTER_KEY.encode() not in captured


@pytest.mark.slow
@pytest.mark.parametrize("key", ["", "not-a-key"])
def test_a_worker_without_a_usable_key_is_one_line_before_it_joins(key: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sim", "worker", "--master", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60, env={**os.environ, KEY_ENV: key},
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("fleetbench: error:") and KEY_ENV in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert key == "" or key not in done.stderr  # a key's value is never echoed


def test_a_master_without_a_key_makes_one_and_prints_it_once(tmp_path: Path, start: Start) -> None:
    _, fleet_path = _fleet(tmp_path)
    port = free_port()
    results = tmp_path / "results"
    log = tmp_path / "master.log"
    with serve_broken_target() as url:
        master = _master(start, url, fleet_path, results, port, 1, 2, env={KEY_ENV: ""})
        deadline = time.monotonic() + RUN_LIMIT_S
        while "cluster key" not in log.read_text():
            assert master.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        (key,) = re.findall(rf"{KEY_ENV}=(\S+)", log.read_text())
        start("w1", "worker", "--master", f"127.0.0.1:{port}", env={KEY_ENV: key})
        assert master.wait(timeout=RUN_LIMIT_S) == 1, log.read_text()  # accepted_invalid
    (worker,) = json.loads((results / "summary.json").read_text())["cluster"]["workers"]
    assert worker["devices"] == 12 and worker["requests"] > 0  # it joined with that key
    assert log.read_text().count(key) == 1
    for path in results.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
