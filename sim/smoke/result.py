"""A smoke run's result and its ``summary.json`` record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sim.artefacts.smoke_file import SMOKE_SCHEMA, SmokeFile
from sim.artefacts.summary_file import Summary
from sim.thresholds import Check, Thresholds, unit

__all__ = ["SMOKE_SCHEMA", "SmokeResult", "measured_text", "smoke_record"]


@dataclass
class SmokeResult:
    """Each run's summary and its threshold checks, by the run's token algorithm."""

    folder: Path
    thresholds: Thresholds
    runs: dict[str, Summary] = field(default_factory=dict)  # by the run's token alg
    checks: dict[str, list[Check]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def all_checks(self) -> list[Check]:
        return [c for checks in self.checks.values() for c in checks]

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(c.passed for c in self.all_checks)

    @property
    def interrupted(self) -> bool:
        return any(s["run"]["interrupted"] for s in self.runs.values())


def measured_text(check: Check) -> str:
    worst = check.worst
    if worst is None:
        return "-"
    value = worst.value
    shown = (
        f"{value:.4g}"
        if check.threshold.metric in ("error_ratio", "max_shortfall")
        else f"{value:.0f}"
    )
    if check.threshold.metric == "min_rps":
        shown = f"{value:.1f}"
    return f"{shown}{unit(check.threshold.metric)}"


def smoke_record(result: SmokeResult) -> SmokeFile:
    """The top-level ``summary.json``: verdict, checks, and each run's summary."""
    return {
        "schema": SMOKE_SCHEMA,
        "passed": result.passed,
        "interrupted": result.interrupted,
        "elapsed_s": result.elapsed_s,
        "thresholds": {
            "source": result.thresholds.source,
            "count": len(result.thresholds.thresholds),
        },
        "checks": [c.record() for c in result.all_checks],
        "failures": [
            f"{c.alg} {line}" for c in result.all_checks if not c.passed for line in c.breaches()
        ],
        "runs": result.runs,
    }
