"""Shared fixtures: real targets on loopback ports, real keys, real SQLite files.

Also the test kinds (markers registered in pyproject.toml): a test that uses a fixture starting a
real process is marked ``slow`` here, and one that drives the seed Express API ``node``; other
tests carry their marks in their own modules. ``make test-fast`` deselects the four kinds, and a
test without any of them that starts a process fails, so a missing mark cannot pass unseen.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.run.embedded import EmbeddedTarget
from sim.screenshot import chromium_path

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "vectors"
SEED_EXPRESS = REPO / "tests" / "apis" / "seed_express"

StartTarget = Callable[..., EmbeddedTarget]

# Fixtures that start a real server or run (directly or through a fixture they use).
SLOW_FIXTURES = frozenset({
    "start_target", "shared_target", "broken_target", "real_mixed_summary", "real_smoke",
    "real_micro_compare", "real_e2e_compare", "prometheus_server", "stalling_api",
    "start_weak", "es256_api", "flask_api", "start", "slow_api", "slow_search", "lax_api", "live",
    "own_server",
})  # fmt: skip
NODE_FIXTURES = frozenset({"seed_express", "start_seed"})
# The tests marked ``serial``: they saturate or measure the machine (benches, capacity searches on
# our embedded target), judge a short run's rate or shortfall second by second (the open model,
# overload, stages: a second lost to another test's start-up breaks them) or judge pinned cores,
# so scripts/check runs them one at a time, with the machine to themselves, last.
SERIAL = (
    "tests/benchmarks/",
    "tests/sim/account/test_offered.py",
    "tests/sim/account/test_open_model.py",
    # Revokes half the fleet 7 s into a short run: beside four workers its revoked devices had
    # not yet tried a new CONNECT when the run ended.
    "tests/sim/device/test_mqtt_tasks.py::test_a_revoked_devices_connect_is_refused_as_expected",
    "tests/sim/run/test_machine_share.py",
    "tests/sim/shape/test_stages.py",
    # Searches that double the rate until our embedded target (or the generator) gives out.
    "tests/sim/sweep/test_capacity.py::test_the_embedded_hs256_target_has_a_rate_that_meets_the_",
    "tests/sim/sweep/test_capacity.py::test_a_latency_break_on_the_embedded_target_gets_a_second",
    "tests/sim/test_processes.py",
)
# The tests marked ``paired``: they judge a run's timing, lag or storms with room to spare (a
# recovery within the run, a share within 10 %, a loose objective), and mostly wait (a slow or
# stalling target, a token lifetime, a few dozen requests a second; about a third of a core each),
# so they must not run beside the first pass's load, yet two of them share the machine's two cores
# well: scripts/check runs them two at a time, a file per worker, between the first pass and the
# serial tests.
PAIRED = (
    "tests/sim/account/test_storms.py",
    # Not a judge of rates, but the heaviest: a two-worker run, Prometheus and chromium at once
    # (beside four other workers on a busy machine its page outlasted the browser's waits).
    "tests/sim/output/test_metrics_endpoint.py::test_prometheus_graph_page_draws_the_run",
    "tests/sim/run/test_distributed_open.py",
    "tests/sim/run/test_openprobe.py",
    "tests/sim/sweep/test_capacity.py",  # searches over a slow API: it sleeps, nobody computes
    "tests/sim/sweep/test_capacity_remote.py",
    "tests/sim/sweep/test_capacity_workers.py",
)


def listed_paths(kind: str) -> list[str]:
    """The files and folders that hold the ``kind`` (``serial`` or ``paired``) tests: scripts/check
    collects only these for their passes (collecting all of tests/ costs seconds per pass)."""
    listed = {"serial": SERIAL, "paired": PAIRED}[kind]
    return sorted({entry.split("::")[0] for entry in listed})


# A test that reads a session's shared real run (tests/sim/conftest.py) judges no timing of its own:
# it stays in the first pass, where the run is made once for every worker, even in a SERIAL or
# PAIRED file.
SHARED_RUNS = frozenset(
    {"real_mixed_summary", "real_smoke", "real_micro_compare", "real_e2e_compare"}
)
# The kinds that may start processes; make test-fast deselects them.
PROCESS_MARKS = ("slow", "browser", "node", "wheel")


def _absent(kind: str) -> str | None:
    """Why tests of ``kind`` cannot run here, or None when they can."""
    if kind == "browser" and (
        chromium_path() is None or importlib.util.find_spec("playwright") is None
    ):
        return "needs Debian's chromium (apt-get install chromium) and playwright (pip, dev extra)"
    if kind == "node" and shutil.which("node") is None:
        return "node is not installed"
    if kind == "node" and not (SEED_EXPRESS / "node_modules" / "express").is_dir():
        return "run npm ci --prefix tests/apis/seed_express (as .ci/run does)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {kind: _absent(kind) for kind in ("browser", "node")}
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & NODE_FIXTURES:
            item.add_marker(pytest.mark.node)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if not used & SHARED_RUNS:
            if item.nodeid.startswith(SERIAL):
                item.add_marker(pytest.mark.serial)
            elif item.nodeid.startswith(PAIRED):
                item.add_marker(pytest.mark.paired)
        for kind, reason in reasons.items():
            if reason is not None and item.get_closest_marker(kind) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _a_process_needs_a_mark(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test of none of the process kinds may not start a process: it would slow the fast loop
    unseen. (Session fixtures start before this one; those that start servers mark their users.)"""
    if any(request.node.get_closest_marker(kind) for kind in PROCESS_MARKS):
        return
    nodeid = request.node.nodeid

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        pytest.fail(f"{nodeid} starts a process ({args!r}): mark it slow", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture
def start_target() -> Iterator[StartTarget]:
    """Start ``python -m target`` (real uvicorn on a free loopback port); stopped after the test."""
    started: list[EmbeddedTarget] = []

    def start(alg: str = "ES256", **flags: Any) -> EmbeddedTarget:
        target = EmbeddedTarget(alg, **flags).start()
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()
