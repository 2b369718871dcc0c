"""Smoke thresholds: limits on a run's ``summary.json``, written in TOML, in the spirit of k6.

A file has an optional ``[run]`` table (limits on the whole run) and any number of
``[[threshold]]`` tables, each selecting request rows by ``endpoint``, ``scenario`` and ``alg``
(glob patterns, or lists of them) and optionally one ``outcome``, and naming limits on them::

    [run]
    error_ratio = 0.01

    [[threshold]]
    name = "protected endpoints"
    scenario = ["verification", "expiry"]
    outcome = "ok"
    p99_us = 500_000

Every limit becomes one :class:`Threshold`; evaluated against a summary it is one :class:`Check`,
measured on every matching row. ``accepted_invalid``, ``server_error`` and ``telemetry_lost`` are
always limited to 0 on the whole run: a file may restate that, never relax it.

:mod:`~sim.thresholds.model` holds the types, :mod:`~sim.thresholds.reader` reads a file (with
:mod:`sim.tomlfile`), :mod:`~sim.thresholds.evaluation` measures a summary against them.
"""

from __future__ import annotations

from sim.errors import ThresholdsError
from sim.thresholds.evaluation import evaluate, run_alg
from sim.thresholds.model import (
    ALWAYS_ON,
    ERROR_OUTCOMES,
    METRICS,
    Check,
    Measured,
    Metric,
    Selector,
    Threshold,
    Thresholds,
    unit,
)
from sim.thresholds.reader import default_thresholds, load_thresholds, parse_thresholds

__all__ = [
    "ALWAYS_ON",
    "ERROR_OUTCOMES",
    "METRICS",
    "Check",
    "Measured",
    "Metric",
    "Selector",
    "Threshold",
    "Thresholds",
    "ThresholdsError",
    "default_thresholds",
    "evaluate",
    "load_thresholds",
    "parse_thresholds",
    "run_alg",
    "unit",
]
