"""The smoke profile as a function: short mixed runs per algorithm, judged by thresholds.

Each algorithm gets a fresh embedded target (or the one ``target``) and one
:func:`sim.run.runner.run_benchmark` run with all four scenarios and a short token lifetime, so
issuance, verification, expiry and rejection all happen; :mod:`sim.smoke.outputs` writes what
CI reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sim.account.live import RunProgress
from sim.errors import ConfigError
from sim.profiles.mqtt_settings import Transport
from sim.run.config import RunConfig
from sim.run.results import results_folder
from sim.run.runner import run_benchmark
from sim.shape.scenarios import MIXED, Scenario
from sim.smoke.outputs import write_smoke_outputs
from sim.smoke.result import SmokeResult
from sim.thresholds import Thresholds, evaluate, run_alg
from target.jose.algorithms import ALG_NAMES

__all__ = ["DEFAULT_ALGS", "SmokeConfig", "run_smoke"]

DEFAULT_ALGS = ("HS256", "ES256")


@dataclass(frozen=True)
class SmokeConfig:
    """The CI profile. About ``duration_s`` + 6 s of wall time per algorithm on two cores."""

    target: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    algs: tuple[str, ...] = DEFAULT_ALGS  # embedded target only: one run per algorithm
    devices: int = 200
    duration_s: float = 8.0
    interval_s: float = 0.5
    token_ttl: int = 4  # embedded target only: short, so the expiry scenario sees expiries
    scenarios: dict[Scenario, int] = field(default_factory=lambda: dict(MIXED))
    results: Path | None = None
    pin: bool = True
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    progress: RunProgress | None = field(default=None, repr=False)
    profile: str = "fleetbench"  # the target profile (sim/profiles), for --target
    # --transport mqtt: the steady state over MQTT (the scenarios' HTTP requests have no MQTT
    # form), its short tokens closing every session mid-run; mqtt_port: a --target's broker.
    transport: Transport = "http"
    mqtt_port: int | None = None

    def check(self) -> None:
        if not self.algs:
            raise ConfigError("--algs is empty")
        for alg in self.algs:
            if alg not in ALG_NAMES:
                raise ConfigError(f"unknown algorithm {alg!r}; choose from {', '.join(ALG_NAMES)}")
        if len(set(self.algs)) != len(self.algs):
            raise ConfigError("--algs names an algorithm twice")
        for _, run in self.runs(Path("results")):
            run.check()  # each run's own rules, before anything starts

    def _log_as(self, name: str) -> Callable[[str], None]:
        return lambda message: self.log(f"{name}: {message}")

    def runs(self, folder: Path) -> list[tuple[str, RunConfig]]:
        """(folder name, run) per run: one per algorithm, or the one ``--target``."""
        mqtt = self.transport == "mqtt"
        shared = RunConfig(
            devices=self.devices,
            scenarios={"verification": 1} if mqtt else self.scenarios,
            transport=self.transport,
            mqtt_port=self.mqtt_port,
            interval_s=self.interval_s,
            duration_s=self.duration_s,
            pin=self.pin,
            progress=self.progress,
            profile=self.profile,
        )
        if self.target is not None:
            config = replace(
                shared,
                target=self.target,
                admin_key=self.admin_key,
                results=folder / "target",
                log=self._log_as("target"),
            )
            return [("target", config)]
        return [
            (
                alg,
                replace(
                    shared,
                    token_alg=alg,
                    token_ttl=self.token_ttl,
                    results=folder / alg,
                    log=self._log_as(alg),
                ),
            )
            for alg in self.algs
        ]


def run_smoke(config: SmokeConfig, thresholds: Thresholds) -> SmokeResult:
    """Run the profile, evaluate the thresholds, write the outputs; stop early if interrupted."""
    config.check()
    started = time.monotonic()
    folder = results_folder(config.results, "smoke")
    result = SmokeResult(folder, thresholds)
    for _, run in config.runs(folder):
        summary = run_benchmark(run)
        alg = run_alg(summary)
        result.runs[alg] = summary
        result.checks[alg] = evaluate(thresholds, summary)
        if summary["run"]["interrupted"]:
            break
    result.elapsed_s = round(time.monotonic() - started, 2)
    write_smoke_outputs(result)
    return result
