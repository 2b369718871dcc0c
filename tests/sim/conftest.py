"""Simulator fixtures: a broken target that accepts any token, served by real uvicorn; golden
summaries of real runs (``summaries/``, made by ``python -m tests.sim.golden``) for the tests that
judge a summary's figures; one short real mixed run, smoke and compare each, shared by the tests
that only read what they did."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, cast

import pytest
import requests

from sim.artefacts.codec import read_summary
from sim.artefacts.summary_file import Summary
from sim.device.seal import KEY_ENV, new_key_text
from sim.run.config import RunConfig
from sim.run.embedded import free_port
from sim.run.runner import run_benchmark
from sim.shape.scenarios import MIXED
from tests.commands import fleetbench

REPO = Path(__file__).resolve().parents[2]
SUMMARIES = Path(__file__).resolve().parent / "summaries"
Start = Callable[..., subprocess.Popen[bytes]]
CLUSTER_KEY = new_key_text()  # a master's and its workers' in these tests (sim.device.seal)


@contextlib.contextmanager
def serve_broken_target(app: str = "tests.sim.broken_target:app") -> Iterator[str]:
    """URL of a target that answers 200 to every Bearer token, forged or not (``app``: another
    test target of that kind, such as ``tests.sim.slow_target:app``)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    with serve_process(command, port) as url:
        yield url


@contextlib.contextmanager
def serve_process(command: list[str], port: int) -> Iterator[str]:
    """URL of a test server started by ``command`` on ``port``, once its /healthz answers 200."""
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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


def golden_path(name: str) -> Path:
    """The golden summary ``name`` (see tests/sim/golden.py): ``mixed``, ``slow`` (the mixed run
    at 0.5 s pacing) or ``forged_accepted`` (rejection against a target that accepts any token)."""
    return SUMMARIES / f"{name}.json"


def golden(name: str) -> Summary:
    """The golden summary ``name``, read and validated as the product reads a summary."""
    return read_summary(golden_path(name))


@pytest.fixture
def mixed_summary() -> Summary:
    """The golden summary of a real mixed run (``mixed_run``)."""
    return golden("mixed")


class RealCommand(NamedTuple):
    """A real ``fleetbench`` command shared by the tests that only read what it did."""

    done: subprocess.CompletedProcess[str]
    results: Path  # its --results folder
    wall_s: float

    def json(self) -> Any:
        """What it printed with ``--json``."""
        return json.loads(self.done.stdout)


def _once(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object]) -> Path:
    """The folder ``name`` that ``make`` filled once for this pytest run: the pytest-xdist
    workers of one run share it (their base folders sit side by side), and the first to come
    makes it while the others wait on its lock."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / "made").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a maker that failed half way
            folder.mkdir()
            make(folder)
            (folder / "made").touch()
    return folder


def _real(
    factory: pytest.TempPathFactory, name: str, *args: str, timeout: float = 120, step: bool = False
) -> RealCommand:
    """``fleetbench ARGS --results <folder>/results``, run once for this pytest run (``step``:
    with ``$GITHUB_STEP_SUMMARY`` at ``<folder>/step_summary.md``, holding ``earlier step``)."""

    def make(folder: Path) -> None:
        with pytest.MonkeyPatch.context() as env:
            if step:
                (folder / "step_summary.md").write_text("earlier step\n")
                env.setenv("GITHUB_STEP_SUMMARY", str(folder / "step_summary.md"))
            started = time.monotonic()
            done = fleetbench(*args, "--results", str(folder / "results"), timeout=timeout)
        kept = {"args": done.args, "returncode": done.returncode, "stdout": done.stdout}
        kept |= {"stderr": done.stderr, "wall_s": time.monotonic() - started}
        (folder / "command.json").write_text(json.dumps(kept))

    folder = _once(factory, name, make)
    kept = json.loads((folder / "command.json").read_text())
    wall_s = kept.pop("wall_s")
    return RealCommand(subprocess.CompletedProcess(**kept), folder / "results", wall_s)


@pytest.fixture(scope="session")
def real_smoke(tmp_path_factory: pytest.TempPathFactory) -> RealCommand:
    """``fleetbench smoke --devices 50``: the CI smoke (HS256 then ES256, 8 s each), smaller. As
    under GitHub Actions it appends its Markdown summary to ``$GITHUB_STEP_SUMMARY``: the file
    ``step_summary.md`` beside its results, which held ``earlier step`` before."""
    return _real(tmp_path_factory, "smoke", "smoke", "--devices", "50", step=True)


@pytest.fixture(scope="session")
def real_micro_compare(tmp_path_factory: pytest.TempPathFactory) -> RealCommand:
    """``fleetbench compare --micro-only`` of HS256, ES256 and EdDSA, two rounds, ``--json``."""
    return _real(
        tmp_path_factory, "compare", "compare", "--json", "--micro-only",
        "--algs", "HS256,ES256,EdDSA", "--repeat", "2", "--micro-budget", "0.02",
    )  # fmt: skip


@pytest.fixture(scope="session")
def real_e2e_compare(tmp_path_factory: pytest.TempPathFactory) -> RealCommand:
    """``fleetbench compare`` end to end: HS256 and ES256, a 3 s round of 5 devices, ``--json``."""
    return _real(
        tmp_path_factory, "e2e", "compare", "--json", "--algs", "HS256,ES256",
        "--repeat", "1", "--micro-budget", "0.02", "--duration", "3", "--devices", "5",
        timeout=180,
    )  # fmt: skip


@pytest.fixture(scope="session")
def real_mixed_summary(tmp_path_factory: pytest.TempPathFactory) -> Summary:
    """One real mixed run for the whole pytest run (its workers share it); its summary.json is at
    ``run.results``."""
    # As the run wrote it (read_summary's typed decoding would not write back the same text).
    written = (_once(tmp_path_factory, "mixed", mixed_run) / "summary.json").read_text()
    return cast(Summary, json.loads(written))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``python -m sim ARGS`` in its own process group, output in ``tmp_path/<name>.log``; the
    cluster key of these tests in its environment unless ``env`` says otherwise."""
    started: list[subprocess.Popen[bytes]] = []

    def run(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sim", *args], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, KEY_ENV: CLUSTER_KEY, **(env or {})},
            )  # fmt: skip
        started.append(process)
        return process

    yield run
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
