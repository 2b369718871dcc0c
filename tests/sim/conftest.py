"""Simulator fixtures: a broken target that accepts any token, served by real uvicorn; one
short real mixed run shared by the threshold and diff tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sim.artefacts.summary_file import Summary
from sim.run.config import RunConfig
from sim.run.embedded import free_port
from sim.run.runner import run_benchmark
from sim.shape.scenarios import MIXED

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serve_broken_target(app: str = "tests.sim.broken_target:app") -> Iterator[str]:
    """URL of a target that answers 200 to every Bearer token, forged or not (``app``: another
    test target of that kind, such as ``tests.sim.slow_target:app``)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--port", str(port),
         "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def serve_stalling_api(
    monkeypatch: pytest.MonkeyPatch, after_s: float, stall_s: float
) -> Iterator[str]:
    """URL of ``tests/apis/stall``: it stalls once, ``after_s`` after its first data request, for
    ``stall_s`` seconds."""
    monkeypatch.setenv("STALL_AFTER_S", str(after_s))
    monkeypatch.setenv("STALL_S", str(stall_s))
    with serve_broken_target("tests.apis.stall.app:app") as url:
        yield url


@pytest.fixture
def broken_target() -> Iterator[str]:
    with serve_broken_target() as url:
        yield url


def mixed_run(folder: Path, interval_s: float = 0.1) -> Summary:
    """A real 5 s run of all four scenarios (HS256, 10 devices, 2 s tokens); summary.json in
    ``folder``."""
    config = RunConfig(
        devices=10,
        duration_s=5,
        interval_s=interval_s,
        token_alg="HS256",
        token_ttl=2,
        leeway=0,
        scenarios=dict(MIXED),
        results=folder,
    )
    return run_benchmark(config)


@pytest.fixture(scope="session")
def mixed_summary(tmp_path_factory: pytest.TempPathFactory) -> Summary:
    """One real mixed run for the whole session; its summary.json is at ``run.results``."""
    return mixed_run(tmp_path_factory.mktemp("mixed"))
