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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sim.device.seal import KEY_ENV, new_key_text
from sim.device.settings import REFUSED_EXIT, REMOTE_ENV
from sim.errors import SimError
from sim.processes import pin_to
from sim.run.distributed import parse_address
from sim.run.embedded import free_port
from sim.run.locust_child import LOCUSTFILE

__all__ = ["WorkerConfig", "local_workers", "run_worker", "worker_command"]

# The run's own variables: a worker takes its settings and devices from the master only.
_NOT_PASSED_ON = (
    "FLEETBENCH_CONFIG", "FLEETBENCH_FLEET", "FLEETBENCH_ADMIN_KEY", "TARGET_ADMIN_KEY",
)  # fmt: skip


@dataclass(frozen=True)
class WorkerConfig:
    master: str  # HOST[:PORT] of the master's --bind
    processes: int = 1  # Locust worker processes on this host (one core each)
    # Join the master again after each run it ends: ``fleetbench capacity --master`` runs one
    # master per step. Ends when no master comes within Locust's wait, or on a signal.
    stay: bool = False


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
    """Run until the master ends the run (or a signal ends this worker); Locust's exit code.
    ``stay``: join again after each run the master ended; 0 once a later join found no master
    (the search is over), else the failing join's code."""
    if config.processes < 1:
        raise SimError("--processes must be at least 1")
    runs = 0
    while True:
        code, signalled = _run_once(config)
        if not config.stay or signalled or code == REFUSED_EXIT:
            return code
        if code != 0:
            return 0 if runs else code  # no master came back after the last step
        runs += 1


def _run_once(config: WorkerConfig) -> tuple[int, bool]:
    """One Locust worker's run: its exit code, and whether a signal ended it."""
    command = worker_command(config)
    signalled = [False]
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED_ON}
    env[REMOTE_ENV] = "1"
    # In this process's group: killing the group (a lost host, kill -9 -PGID) ends both.
    process = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: FrameType | None) -> None:
        signalled[0] = True
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait(), signalled[0]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def local_workers(count: int, cpus: set[int] | None, logs: Path) -> Iterator[str]:
    """``count`` ``fleetbench worker --stay`` processes on this host, on ``cpus``, for as long as
    the block runs: each run of the block whose master binds the yielded loopback ``HOST:PORT``
    gets all of them, and its ``cluster`` account names each (``fleetbench capacity
    --workers``: one master per step). A cluster key of their own is in this process's
    environment meanwhile, where each step's master reads it; their output in ``logs``."""
    bind = f"127.0.0.1:{free_port()}"
    previous = os.environ.get(KEY_ENV)
    key = previous or new_key_text()
    os.environ[KEY_ENV] = key
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED_ON}
    command = [sys.executable, "-m", "sim", "worker", "--master", bind, "--stay"]
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            with open(logs / f"worker{index + 1}.log", "ab") as log:
                process = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            processes.append(process)
            pin_to(process.pid, cpus)  # before it starts its Locust child: that inherits it
        yield bind
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if previous is None:
            os.environ.pop(KEY_ENV, None)
