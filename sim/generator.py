"""Generator health: CPU and memory of the Locust process tree, so a saturated load generator is
never taken for a slow target."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

__all__ = ["SATURATED_CPU_PERCENT", "GeneratorSampler"]

# A generator process busier than this share of one core is the bottleneck, not the target.
SATURATED_CPU_PERCENT = 90.0


@dataclass
class _Track:
    process: psutil.Process
    role: str
    cpu: list[float] = field(default_factory=list)
    peak_rss: int = 0


class GeneratorSampler:
    """Samples every process under ``pid`` (a ``locust`` master and its workers)."""

    def __init__(self, pid: int) -> None:
        self._root = pid
        self._tracks: dict[int, _Track] = {}
        self.peak_rss_total = 0
        self.samples = 0

    def _discover(self) -> None:
        try:
            root = psutil.Process(self._root)
            found = [(root, "master"), *((child, "worker") for child in root.children(True))]
        except psutil.Error:
            return
        for process, role in found:
            if process.pid not in self._tracks:
                try:
                    process.cpu_percent(None)  # the first call only sets the baseline
                except psutil.Error:
                    continue
                self._tracks[process.pid] = _Track(process, role)

    def sample(self) -> None:
        self._discover()
        total_rss = 0
        for track in self._tracks.values():
            try:
                with track.process.oneshot():
                    cpu = track.process.cpu_percent(None)
                    rss = track.process.memory_info().rss
            except psutil.Error:
                continue
            track.cpu.append(cpu)
            track.peak_rss = max(track.peak_rss, rss)
            total_rss += rss
        self.peak_rss_total = max(self.peak_rss_total, total_rss)
        self.samples += 1

    def run_until(
        self,
        done: Any,
        interval_s: float = 0.5,
        deadline: float | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Sample every ``interval_s`` until ``done()`` is true or ``deadline`` (monotonic);
        ``tick`` after each sample."""
        while not done() and (deadline is None or time.monotonic() < deadline):
            self.sample()
            if tick is not None:
                tick()
            time.sleep(interval_s)

    def latest_cpu_percent(self) -> float:
        """The whole tree's CPU at the last sample, in % of one core."""
        return sum(track.cpu[-1] for track in self._tracks.values() if track.cpu)

    def summary(self) -> dict[str, Any]:
        processes = []
        for pid, track in sorted(self._tracks.items()):
            # The first second is start-up (imports, fleet parse); it says nothing about load.
            cpu = track.cpu[2:] or track.cpu
            mean = sum(cpu) / len(cpu) if cpu else 0.0
            processes.append(
                {
                    "pid": pid,
                    "role": track.role,
                    "cpu_percent_mean": round(mean, 1),
                    "cpu_percent_max": round(max(cpu, default=0.0), 1),
                    "peak_rss_bytes": track.peak_rss,
                    "saturated": mean > SATURATED_CPU_PERCENT,
                }
            )
        return {
            "processes": processes,
            "samples": self.samples,
            "saturated": any(p["saturated"] for p in processes),
            "saturation_threshold_percent": SATURATED_CPU_PERCENT,
            "peak_rss_bytes": self.peak_rss_total,
        }
