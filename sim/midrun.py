"""An action on a thread beside Locust, once its test has started: the reconnect storm's outage
(:class:`sim.storms.Outage`), the key rotation and the revocations of the trust scenarios
(:mod:`sim.trust`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from sim.errors import SimError

__all__ = ["MidRun"]


class MidRun:
    """Once Locust's test has started (its progress file appears), wait ``after_s``, then run
    ``action``; it gets the stop event, set when the load ends, to bound any waiting of its own.
    A :class:`SimError` it raises is kept in ``error`` for the run's verdict."""

    def __init__(
        self, action: Callable[[threading.Event], None], progress: Path, after_s: float
    ) -> None:
        self._action = action
        self._progress = progress
        self._after_s = after_s
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="fleetbench-midrun", daemon=True)

    def _run(self) -> None:
        while not self._progress.exists():
            if self._stop.wait(0.1):
                return
        if self._stop.wait(self._after_s):
            return
        try:
            self._action(self._stop)
        except SimError as e:
            self.error = str(e)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
