"""Making the golden summaries again: ``python -m tests.sim.golden [NAME...]`` (about a
minute for all).

The golden summaries are the ``summary.json`` of real short runs, kept in ``tests/sim/summaries/``
(read through ``tests.sim.conftest.golden``), so that tests judging a summary's figures
(thresholds, diff, the closed model's keys) need not wait for a run of their own.
``tests/sim/test_golden.py`` holds a fresh real run to the same shape: when it fails after a change
to what a summary holds, run this.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.artefacts.codec import write_summary
from sim.artefacts.summary_file import Summary
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark
from tests.sim.conftest import golden_path, mixed_run, serve_broken_target


def forged_accepted_run(folder: Path) -> Summary:
    """A real run against a target that accepts every token: all forgeries get through."""
    with serve_broken_target() as url:
        config = RunConfig(
            target=url,
            admin_key="anything-goes-here",
            devices=4,
            duration_s=3,
            interval_s=0.1,
            scenarios={"rejection": 1},
            bad_ratio=1.0,
            results=folder,
        )
        return run_benchmark(config)


def mqtt_run(folder: Path, **changes: Any) -> Summary:
    """A real run over MQTT (--transport mqtt) on the embedded target's broker, with tokens of
    2 s: every session closed at expiry and reopened, the mqtt section filled."""
    settings: dict[str, Any] = {
        "devices": 6, "alg": "secret", "token_alg": "HS256", "token_ttl": 2, "leeway": 1,
        "duration_s": 6, "interval_s": 0.25, "transport": "mqtt",
    }  # fmt: skip
    return run_benchmark(RunConfig(**{**settings, **changes, "results": folder}))


# name -> the real run it keeps
RUNS: dict[str, Callable[[Path], Summary]] = {
    "mixed": mixed_run,
    # each device pacing 0.5 s instead of 0.1 s: about a fifth of the rps
    "slow": lambda folder: mixed_run(folder, interval_s=0.5),
    "forged_accepted": forged_accepted_run,
    "mqtt": mqtt_run,
    # an expiry storm over MQTT: every session closed together, storms.expiry.connect_burst
    "mqtt_storm": lambda folder: mqtt_run(
        folder, token_ttl=3, duration_s=9, scenarios={"expiry": 1}, storm="expiry-storm"
    ),
}


def main(names: list[str]) -> None:
    for name in names or RUNS:
        run = RUNS[name]
        with tempfile.TemporaryDirectory() as folder:
            summary = run(Path(folder))
        # The run's folder was temporary: name a plausible one instead of this machine's path.
        summary["run"]["results"] = summary["run"]["parameters"]["results"] = f"results/{name}"
        golden_path(name).parent.mkdir(exist_ok=True)
        write_summary(summary, golden_path(name))
        print(f"{golden_path(name)}: made again from a real run")


if __name__ == "__main__":
    main(sys.argv[1:])
