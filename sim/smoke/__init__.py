"""The CI profile (``fleetbench smoke``): short mixed runs per algorithm judged by thresholds.

:mod:`sim.smoke.engine` runs it, :mod:`sim.smoke.result` holds what it found and its
``summary.json`` record, :mod:`sim.smoke.outputs` writes the folder (with
:mod:`sim.smoke.junit` and :mod:`sim.smoke.markdown`).
"""

from __future__ import annotations

from sim.smoke.engine import DEFAULT_ALGS, SmokeConfig, run_smoke
from sim.smoke.markdown import smoke_markdown
from sim.smoke.outputs import write_smoke_outputs
from sim.smoke.result import SMOKE_SCHEMA, SmokeResult, smoke_record

__all__ = [
    "DEFAULT_ALGS",
    "SMOKE_SCHEMA",
    "SmokeConfig",
    "SmokeResult",
    "run_smoke",
    "smoke_markdown",
    "smoke_record",
    "write_smoke_outputs",
]
