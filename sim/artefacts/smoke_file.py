"""The smoke's ``summary.json`` (``fleetbench.smoke/1``), typed: its checks and its runs."""

from __future__ import annotations

from typing import Final, Literal, TypedDict

from sim.artefacts.summary_file import Summary

__all__ = ["SMOKE_SCHEMA", "MeasuredValue", "SmokeCheck", "SmokeFile", "ThresholdsSource"]

SMOKE_SCHEMA: Final = "fleetbench.smoke/1"


class MeasuredValue(TypedDict):
    where: str
    value: float
    passed: bool


class SmokeCheck(TypedDict):
    """One threshold checked against one run (``sim.thresholds.Check.record``)."""

    alg: str
    threshold: str
    metric: str  # one of sim.thresholds.METRICS
    limit: float
    bound: Literal["max", "min"]
    passed: bool
    always_on: bool
    note: str
    measured: list[MeasuredValue]


class ThresholdsSource(TypedDict):
    source: str
    count: int


class SmokeFile(TypedDict):
    """The top-level ``summary.json`` of ``fleetbench smoke`` (``fleetbench.smoke/1``)."""

    schema: Literal["fleetbench.smoke/1"]
    passed: bool
    interrupted: bool
    elapsed_s: float
    thresholds: ThresholdsSource
    checks: list[SmokeCheck]
    failures: list[str]
    runs: dict[str, Summary]  # by algorithm
