"""``fleetbench worker`` as a function: one Locust worker that joins a ``fleetbench run --master``,
receives its own shard of the fleet and the run's settings from it, runs them and reports back.

The worker holds no fleet file and no admin key: its devices (with their secrets and keys) come
over Locust's messaging from the master (:mod:`sim.device.cluster`), which also says when to stop.
Locust's worker tries to reach the master for about five minutes, so a worker may start first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from types import FrameType

from sim.device.settings import REMOTE_ENV
from sim.errors import SimError
from sim.run.distributed import parse_address
from sim.run.locust_child import LOCUSTFILE

__all__ = ["WorkerConfig", "run_worker", "worker_command"]

# The run's own variables: a worker takes its settings and devices from the master only.
_NOT_PASSED_ON = (
    "FLEETBENCH_CONFIG", "FLEETBENCH_FLEET", "FLEETBENCH_ADMIN_KEY", "TARGET_ADMIN_KEY",
)  # fmt: skip


@dataclass(frozen=True)
class WorkerConfig:
    master: str  # HOST[:PORT] of the master's --bind
    processes: int = 1  # Locust worker processes on this host (one core each)


def worker_command(config: WorkerConfig) -> list[str]:
    address = parse_address(config.master, "--master")
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
        "--master-host", address.host, "--master-port", str(address.port),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    if config.processes > 1:
        command += ["--processes", str(config.processes)]
    return command


def run_worker(config: WorkerConfig) -> int:
    """Run until the master ends the run (or a signal ends this worker); Locust's exit code."""
    if config.processes < 1:
        raise SimError("--processes must be at least 1")
    command = worker_command(config)
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED_ON}
    env[REMOTE_ENV] = "1"
    # In this process's group: killing the group (a lost host, kill -9 -PGID) ends both.
    process = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            process.kill()
            process.wait()
