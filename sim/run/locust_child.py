"""Locust as the orchestrator's child process: its command line, its run under sampling and
signals, and the live figures read from the file its master rewrites every second.

The orchestrator never imports Locust or gevent (which patches the standard library); it starts
``python -m locust`` on the locustfile shipped in the package.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from sim.account.generator import GeneratorSampler, ProcessTreeSampler, sample_until
from sim.account.live import LIVE_EVERY_S, LiveFigures
from sim.account.live_metrics import live_account
from sim.errors import Interrupted
from sim.processes import pin_to
from sim.run.config import RunConfig
from sim.run.embedded import free_port

__all__ = [
    "LOCUSTFILE",
    "Stop",
    "locust_command",
    "read_raw",
    "run_locust",
]

# Inside the package: an installed fleetbench has no repository to find a locustfile in.
LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfiles" / "devices.py"
STOP_GRACE_S = 20.0  # after a stop request, how long Locust gets to write its account
STARTUP_ALLOWANCE_S = 60.0  # fleet parse, worker start-up and shutdown around the run time


class Stop:
    """SIGINT/SIGTERM while running: remember it, and stop Locust if it is running."""

    def __init__(self) -> None:
        self.requested = False
        self.locust: subprocess.Popen[bytes] | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.locust is None:
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}")
        with contextlib.suppress(ProcessLookupError):
            self.locust.send_signal(signal.SIGTERM)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stop]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def locust_command(config: RunConfig, users: int, url: str, folder: Path) -> list[str]:
    spawn_rate = config.spawn_rate or float(min(users, 500))
    folder = folder.resolve()  # Locust runs in the results folder
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{max(1, round(config.duration_s))}s",
        "--host",
        url,
        "--csv",
        str(folder / "locust"),
        "--html",
        str(folder / "locust.html"),
        "--json-file",
        str(folder / "locust_stats"),  # Locust's final merged stats, as locust_stats.json
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if config.workers > 1:
        # Locust's master would bind every interface on 5557: a second run on the host could
        # not start, and the port would be open to the network. Loopback, on a free port.
        port = str(free_port())
        command += [
            "--processes", str(config.workers),
            "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-host", "127.0.0.1", "--master-port", port,
        ]  # fmt: skip
    if config.master:
        bind = config.bind_address
        command += [
            "--master",
            "--master-bind-host", bind.host,
            "--master-bind-port", str(bind.port),
            "--expect-workers", str(config.expect_workers),
            "--expect-workers-max-wait", str(config.worker_wait_s),
        ]  # fmt: skip
    return command


def run_locust(
    config: RunConfig,
    command: list[str],
    env: dict[str, str],
    folder: Path,
    cpus: set[int] | None,
    stop: Stop,
    also: list[ProcessTreeSampler],
    progress_file: Path,
) -> tuple[int, GeneratorSampler]:
    """Run Locust to its end, sampling its process tree and ``also`` (the embedded target's)."""

    with open(folder / "locust.log", "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=folder.resolve(),
        )  # fmt: skip
    pin_to(process.pid, cpus)
    stop.locust = process
    sampler = GeneratorSampler(process.pid)
    live_account().watch(progress_file, sampler)
    samplers = [sampler, *also]
    deadline = time.monotonic() + config.duration_s + STARTUP_ALLOWANCE_S
    if config.master:
        deadline += config.worker_wait_s  # the master waits that long for its workers
    tick = _live_reporter(config, progress_file, sampler) if config.progress else None
    try:
        sample_until(
            samplers,
            lambda: process.poll() is not None or stop.requested,
            deadline=deadline,
            tick=tick,
        )
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # interrupted, or past its deadline
            stop.requested = True
        # Locust writes the account on its way out: give it a bounded time, sampling on.
        sample_until(
            samplers, lambda: process.poll() is not None, deadline=time.monotonic() + STOP_GRACE_S
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind by a killed master
        stop.locust = None
    return process.returncode, sampler


def _live_reporter(
    config: RunConfig, progress_file: Path, sampler: GeneratorSampler
) -> Callable[[], None]:
    """Called after each generator sample: every ``LIVE_EVERY_S``, the live figures from the
    file Locust's master rewrites every second."""
    previous: dict[str, float] = {"at": time.monotonic(), "t": 0.0, "requests": 0.0}

    def tick() -> None:
        if config.progress is None or time.monotonic() - previous["at"] < LIVE_EVERY_S:
            return
        data = read_raw(progress_file)
        if not data.get("started") or data.get("t", 0.0) <= previous["t"]:
            return
        requests = int(data.get("requests", 0))
        span_s = data["t"] - (previous["t"] or data["started"])
        rps = (requests - previous["requests"]) / span_s if span_s > 0 else 0.0
        previous.update(at=time.monotonic(), t=data["t"], requests=requests)
        outcomes: dict[str, int] = data.get("outcomes", {})
        config.progress.live(
            LiveFigures(
                elapsed_s=data["t"] - data["started"],
                duration_s=config.duration_s,
                requests=requests,
                rps=rps,
                p50_us=data.get("p50_us"),
                p99_us=data.get("p99_us"),
                not_ok={o: n for o, n in outcomes.items() if o != "ok" and n},
                generator_cpu_percent=sampler.latest_cpu_percent(),
                corrected_p99_us=data.get("corrected_p99_us"),
            )
        )

    return tick


def read_raw(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data
