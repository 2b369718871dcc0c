"""``python -m benchmarks.cluster``: sizing figures for a fleet over remote workers, on one host.

Starts our target (``python -m target``), a ``fleetbench run --master`` against it and N
``fleetbench worker`` processes on loopback, and prints what each worker drove (devices,
requests per second, its CPU), the merged totals, and the target's own count of telemetry for
the same run. On a shared machine the figures say what this machine gave at that moment: rerun
on a quiet one (and across real hosts) before sizing a cluster by them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from sim.device.seal import KEY_ENV, new_key_text
from sim.run.embedded import EmbeddedTarget, free_port

__all__ = ["main"]


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sim", *args], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, **env},
        )  # fmt: skip


def _received(target: EmbeddedTarget) -> dict[str, Any]:
    response = requests.get(
        f"{target.url}/admin/stats",
        headers={"Authorization": f"Bearer {target.admin_key}"},
        timeout=30,
    )
    totals: dict[str, Any] = response.json()["totals"]
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--interval", type=float, default=0.0, help="0: as fast as answered")
    parser.add_argument("--token-alg", default="HS256")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="fleetbench-clusterbench-"))
    target = EmbeddedTarget(args.token_alg).start()
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []
    key = {KEY_ENV: new_key_text()}  # the master and its workers share it
    try:
        master = _start(
            [
                "run", "--master", "--bind", f"127.0.0.1:{port}",
                "--expect-workers", str(args.workers), "--target", target.url,
                "--alg", "secret", "--devices", str(args.devices),
                "--duration", str(args.duration), "--interval", str(args.interval),
                "--results", str(folder / "results"), "--quiet",
            ],
            folder / "master.log",
            {"FLEETBENCH_ADMIN_KEY": target.admin_key, **key},
        )  # fmt: skip
        started.append(master)
        for index in range(args.workers):
            started.append(
                _start(["worker", "--master", f"127.0.0.1:{port}"], folder / f"w{index}.log", key)
            )
        code = master.wait(timeout=args.duration + 300)
        summary = json.loads((folder / "results" / "summary.json").read_text())
        received = _received(target)
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        target.stop()
    elapsed_s = summary["run"]["elapsed_s"]
    print(f"{args.workers} workers, {args.devices} devices, {elapsed_s:.1f} s, exit {code}")
    for worker in summary["cluster"]["workers"]:
        per_device = worker["requests_per_s"] / worker["devices"] if worker["devices"] else 0.0
        print(
            f"  worker pid {worker['pid']}: {worker['devices']} devices, "
            f"{worker['requests_per_s']:.0f} req/s ({per_device:.1f} per device), CPU mean "
            f"{worker['cpu_percent_mean']:.0f} % max {worker['cpu_percent_max']:.0f} % of a core"
            f"{', saturated' if worker['saturated'] else ''}"
        )
    totals = summary["totals"]
    print(
        f"merged: {totals['requests']} requests ({totals['rps']:.0f} req/s), "
        f"sum over workers {sum(w['requests'] for w in summary['cluster']['workers'])}, "
        f"in flight at stop {totals['in_flight_at_stop']}"
    )
    print(
        f"telemetry: acknowledged {summary['telemetry'].get('acknowledged')}, "
        f"the target counted {received['received']} (duplicates {received['duplicates']})"
    )
    print(f"verdict: {summary['verdict']['label']}; results in {folder / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
