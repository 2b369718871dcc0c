"""What a running benchmark reports while it runs: its live figures, and where they go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LIVE_EVERY_S", "LiveFigures", "RunProgress"]

LIVE_EVERY_S = 2.0  # how often a running benchmark reports its live figures


@dataclass(frozen=True)
class LiveFigures:
    """A running benchmark's figures so far, every ``LIVE_EVERY_S`` while Locust runs."""

    elapsed_s: float
    duration_s: float
    requests: int
    rps: float  # since the previous report
    p50_us: float | None  # over every request so far
    p99_us: float | None
    not_ok: dict[str, int]  # outcome -> count, every outcome other than ok
    generator_cpu_percent: float  # the Locust process tree, % of one core
    corrected_p99_us: float | None = None  # the open model's, from intended send times


class RunProgress(Protocol):
    """Where a run reports while it runs (the CLI draws bars and a live line)."""

    def bar(self, description: str, total: int) -> Callable[[int], None]:
        """Start a step of ``total`` units; the returned function advances it by n."""

    def live(self, figures: LiveFigures) -> None:
        """The load phase's figures so far."""
