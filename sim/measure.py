"""Exact measurement: HdrHistograms in microseconds, the outcome account, telemetry and expiry.

Each Locust process records into one :class:`Measurements`. Workers ship what they recorded
since their last report (:meth:`Measurements.take_wire`) and the master adds it in
(:meth:`Measurements.merge_wire`), so totals and histograms merge exactly.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from sim.outcomes import Outcome

__all__ = ["LATENCY_PERCENTILES", "Measurements", "new_histogram", "percentiles"]

LOWEST_US = 1
HIGHEST_US = 120_000_000  # two minutes: longer than any request timeout
SIGNIFICANT_DIGITS = 3
LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}
SEP = "|"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def percentiles(hist: HdrHistogram) -> dict[str, float]:
    """Count, percentiles, min, mean and max of a latency histogram, in microseconds."""
    if hist.get_total_count() == 0:
        return {"count": 0}
    summary: dict[str, float] = {"count": hist.get_total_count()}
    for name, pct in LATENCY_PERCENTILES.items():
        summary[name] = hist.get_value_at_percentile(pct)
    summary["min"] = hist.get_min_value()
    summary["mean"] = round(hist.get_mean_value(), 1)
    summary["max"] = hist.get_max_value()
    return summary


class Measurements:
    """Everything one process saw. Keys are ``endpoint|scenario|alg|outcome`` strings."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.latency: dict[str, HdrHistogram] = {}
        self.mint: dict[str, HdrHistogram] = {}  # by device algorithm
        self.timeline: defaultdict[int, Counter[str]] = defaultdict(Counter)  # second -> outcome
        self.reasons: Counter[str] = Counter()  # endpoint|scenario|status|reason
        self.corpus: defaultdict[str, Counter[str]] = defaultdict(Counter)  # case -> verdict
        self.counters: Counter[str] = Counter()
        self.telemetry: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])  # sent, acked
        # Named sets of device ids, e.g. ``expiry``: devices that ran the expiry scenario.
        self.device_sets: defaultdict[str, set[str]] = defaultdict(set)

    def record(
        self,
        endpoint: str,
        scenario: str,
        alg: str,
        outcome: Outcome,
        latency_us: float,
        *,
        status: int = 0,
        reason: str = "",
    ) -> None:
        key = SEP.join((endpoint, scenario, alg, outcome))
        hist = self.latency.get(key)
        if hist is None:
            hist = self.latency[key] = new_histogram()
        hist.record_value(min(max(int(latency_us), LOWEST_US), HIGHEST_US))
        self.timeline[int(time.time())][outcome] += 1
        if outcome != "ok":
            self.reasons[SEP.join((endpoint, scenario, str(status), reason))] += 1

    def record_mint(self, alg: str, elapsed_us: float) -> None:
        hist = self.mint.get(alg)
        if hist is None:
            hist = self.mint[alg] = new_histogram()
        hist.record_value(min(max(int(elapsed_us), LOWEST_US), HIGHEST_US))

    # -- shipping between processes -------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """A JSON- and msgpack-safe copy (histograms HdrHistogram-encoded)."""
        return {
            "latency": {k: h.encode().decode() for k, h in self.latency.items()},
            "mint": {k: h.encode().decode() for k, h in self.mint.items()},
            "timeline": {str(s): dict(c) for s, c in self.timeline.items()},
            "reasons": dict(self.reasons),
            "corpus": {case: dict(c) for case, c in self.corpus.items()},
            "counters": dict(self.counters),
            "telemetry": {device: list(sa) for device, sa in self.telemetry.items()},
            "device_sets": {name: sorted(ids) for name, ids in self.device_sets.items()},
        }

    def take_wire(self) -> dict[str, Any]:
        """What was recorded since the last call, then forget it (one report's delta)."""
        wire = self.to_wire()
        self.reset()
        return wire

    def merge_wire(self, wire: dict[str, Any]) -> None:
        for key, encoded in wire.get("latency", {}).items():
            self.latency.setdefault(key, new_histogram()).decode_and_add(encoded)
        for key, encoded in wire.get("mint", {}).items():
            self.mint.setdefault(key, new_histogram()).decode_and_add(encoded)
        for second, counts in wire.get("timeline", {}).items():
            self.timeline[int(second)].update(counts)
        self.reasons.update(wire.get("reasons", {}))
        for case, counts in wire.get("corpus", {}).items():
            self.corpus[case].update(counts)
        self.counters.update(wire.get("counters", {}))
        for device, (sent, acked) in wire.get("telemetry", {}).items():
            entry = self.telemetry[device]
            entry[0] += sent
            entry[1] += acked
        for name, ids in wire.get("device_sets", {}).items():
            self.device_sets[name].update(ids)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Measurements:
        merged = cls()
        merged.merge_wire(wire)
        return merged

    def progress(self) -> dict[str, Any]:
        """The account so far in a few figures, for a live progress line: requests, outcome
        counts, and p50/p99 in microseconds over every request so far."""
        total = new_histogram()
        outcomes: Counter[str] = Counter()
        for key, hist in self.latency.items():
            total.add(hist)
            outcomes[key.rsplit(SEP, 1)[1]] += hist.get_total_count()
        count = total.get_total_count()
        return {
            "t": time.time(),
            "requests": count,
            "outcomes": dict(outcomes),
            "p50_us": total.get_value_at_percentile(50.0) if count else None,
            "p99_us": total.get_value_at_percentile(99.0) if count else None,
        }

    def write_progress(self, path: Path, **extra: Any) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**extra, **self.progress()}))
        os.replace(tmp, path)

    def write(self, path: Path, **extra: Any) -> None:
        """Write the account as JSON, atomically (a reader never sees half a file)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**extra, "measurements": self.to_wire()}))
        os.replace(tmp, path)
