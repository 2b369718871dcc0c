"""CPU and memory of a process tree, sampled while a run is under load: the Locust generator's (a
master and its workers) and the embedded target's, so a saturated load generator is never taken
for a slow target, nor a busy target for a slow generator."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import psutil

from sim.artefacts.summary_file import ProcessCpu, ProcessTreeCpu

__all__ = [
    "SATURATED_CPU_PERCENT",
    "SATURATION_RULE",
    "GeneratorSampler",
    "ProcessNow",
    "ProcessTreeSampler",
    "cpu_saturated",
    "sample_until",
]

# A process is the bottleneck when it averages this share of one core over the load window...
SATURATED_CPU_PERCENT = 85.0
# ... or is pegged (this share or more) in at least BUSY_SHARE of the samples: a mean hides a
# process that alternates between pegged and waiting, as an overloaded event loop does.
BUSY_CPU_PERCENT = 95.0
BUSY_SHARE = 1 / 3
SATURATION_RULE = (
    f"saturated: over the load window a process (or a process tree, per core it may use) averages "
    f">= {SATURATED_CPU_PERCENT:.0f} % of one core, or is at >= {BUSY_CPU_PERCENT:.0f} % in at "
    f"least a third of the samples (every 0.5 s; 1 s from an external target's /metrics)"
)


def cpu_saturated(samples: Sequence[float]) -> bool:
    """The saturation rule (:data:`SATURATION_RULE`) on CPU samples in % of one core."""
    if not samples:
        return False
    mean = sum(samples) / len(samples)
    busy = sum(1 for s in samples if s >= BUSY_CPU_PERCENT)
    return mean >= SATURATED_CPU_PERCENT or busy >= BUSY_SHARE * len(samples)


class ProcessNow(NamedTuple):
    """One sampled process as a live view shows it."""

    pid: int
    role: str
    cpu_percent: float  # at the last sample, % of one core
    saturated: bool  # the saturation rule over its samples so far


@dataclass
class _Track:
    process: psutil.Process
    role: str
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, % of one core)
    # Runnable but waiting for a core (Linux schedstat run delay), % of wall time: a process on a
    # busy machine may want a whole core and get half of it, which its CPU alone does not show.
    wait: list[tuple[float, float]] = field(default_factory=list)
    last_delay: tuple[float, float] | None = None  # (monotonic s, run delay s)
    peak_rss: int = 0


def _run_delay_s(pid: int) -> float | None:
    """Seconds the process's threads have spent runnable but not running (None: not Linux)."""
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total_ns += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total_ns / 1e9


def _waited(track: _Track, now: float) -> None:
    delay = _run_delay_s(track.process.pid)
    if delay is None:
        return
    mono = time.monotonic()
    if track.last_delay is not None and mono > track.last_delay[0]:
        share = 100.0 * (delay - track.last_delay[1]) / (mono - track.last_delay[0])
        track.wait.append((now, max(0.0, share)))
    track.last_delay = (mono, delay)


def _in(window: tuple[float, float] | None, samples: list[tuple[float, float]]) -> list[float]:
    """The samples taken inside the load window; without one, all but the first second (start-up:
    imports and the fleet parse say nothing about load)."""
    if window is not None:
        inside = [cpu for t, cpu in samples if window[0] <= t <= window[1]]
        if inside:
            return inside
    return [cpu for _, cpu in samples[2:] or samples]


class ProcessTreeSampler:
    """Samples every process under ``pid``: the root as ``roles[0]``, its descendants as
    ``roles[1]``."""

    def __init__(self, pid: int, roles: tuple[str, str] = ("master", "worker")) -> None:
        self._root = pid
        self._roles = roles
        self._tracks: dict[int, _Track] = {}
        self._totals: list[tuple[float, float]] = []  # the whole tree, per sample
        self.peak_rss_total = 0
        self.samples = 0
        try:
            self.cores = len(psutil.Process(pid).cpu_affinity() or []) or os.cpu_count() or 1
        except (psutil.Error, AttributeError):
            self.cores = os.cpu_count() or 1

    def _discover(self) -> None:
        try:
            root = psutil.Process(self._root)
            found = [(root, self._roles[0])]
            found += [(child, self._roles[1]) for child in root.children(True)]
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
        now = time.time()
        total_rss = 0
        total_cpu = 0.0
        for track in self._tracks.values():
            try:
                with track.process.oneshot():
                    cpu = track.process.cpu_percent(None)
                    rss = track.process.memory_info().rss
            except psutil.Error:
                continue
            track.cpu.append((now, cpu))
            _waited(track, now)
            track.peak_rss = max(track.peak_rss, rss)
            total_rss += rss
            total_cpu += cpu
        self._totals.append((now, total_cpu))
        self.peak_rss_total = max(self.peak_rss_total, total_rss)
        self.samples += 1

    def run_until(
        self,
        done: Callable[[], bool],
        interval_s: float = 0.5,
        deadline: float | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Sample every ``interval_s`` until ``done()`` is true or ``deadline`` (monotonic);
        ``tick`` after each sample."""
        sample_until([self], done, interval_s, deadline, tick)

    def processes_now(self) -> list[ProcessNow]:
        """Each process at the last sample, with the saturation rule over its samples so far."""
        return [
            ProcessNow(pid, track.role, track.cpu[-1][1], cpu_saturated(_in(None, track.cpu)))
            for pid, track in sorted(self._tracks.items())
            if track.cpu
        ]

    def latest_cpu_percent(self) -> float:
        """The whole tree's CPU at the last sample, in % of one core."""
        return sum(track.cpu[-1][1] for track in self._tracks.values() if track.cpu)

    def summary(self, window: tuple[float, float] | None = None) -> ProcessTreeCpu:
        """Per process mean and max CPU inside ``window`` (epoch s), peak memory, and the rule's
        verdict per process and for the tree as a whole (its CPU per core it may run on)."""
        processes: list[ProcessCpu] = []
        for pid, track in sorted(self._tracks.items()):
            cpu = _in(window, track.cpu)
            wait = _in(window, track.wait)
            mean = sum(cpu) / len(cpu) if cpu else 0.0
            wait_mean = sum(wait) / len(wait) if wait else 0.0
            # What it wanted: the CPU it got plus the time it waited for a core.
            waited = dict(track.wait)
            wanted = _in(window, [(t, c + waited[t]) for t, c in track.cpu if t in waited])
            processes.append(
                {
                    "pid": pid,
                    "role": track.role,
                    "cpu_percent_mean": round(mean, 1),
                    "cpu_percent_max": round(max(cpu, default=0.0), 1),
                    "cpu_wait_percent_mean": round(wait_mean, 1),
                    "peak_rss_bytes": track.peak_rss,
                    "saturated": cpu_saturated(cpu),
                    "starved": not cpu_saturated(cpu) and cpu_saturated(wanted),
                }
            )
        per_core = [total / self.cores for total in _in(window, self._totals)]
        tree_saturated = len(processes) > 1 and cpu_saturated(per_core)
        return {
            "processes": processes,
            "samples": self.samples,
            "cores": self.cores,
            "cpu_percent_per_core_mean": round(sum(per_core) / len(per_core), 1)
            if per_core
            else 0.0,
            "saturated": tree_saturated or any(p["saturated"] for p in processes),
            # Not saturated on its own, but it would have been with the cores it waited for: the
            # machine's CPU, shared with other work, is the limit.
            "starved": any(p["starved"] for p in processes),
            "saturation_threshold_percent": SATURATED_CPU_PERCENT,
            "saturation_rule": SATURATION_RULE,
            "peak_rss_bytes": self.peak_rss_total,
        }


class GeneratorSampler(ProcessTreeSampler):
    """The Locust process tree: a ``locust`` master and its workers."""


def sample_until(
    samplers: Sequence[ProcessTreeSampler],
    done: Callable[[], bool],
    interval_s: float = 0.5,
    deadline: float | None = None,
    tick: Callable[[], None] | None = None,
) -> None:
    """Sample each of ``samplers`` every ``interval_s`` until ``done()`` or ``deadline``;
    ``tick`` after each round of samples."""
    while not done() and (deadline is None or time.monotonic() < deadline):
        for sampler in samplers:
            sampler.sample()
        if tick is not None:
            tick()
        time.sleep(interval_s)
