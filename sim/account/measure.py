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
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from hdrh.histogram import HdrHistogram

from sim.artefacts.summary_file import Percentiles
from sim.outcomes import OUTCOMES, Outcome

__all__ = [
    "KEPT_CONNECTION",
    "LATENCY_PERCENTILES",
    "SETUP_SCENARIO",
    "TIMED_EVENTS",
    "Measurements",
    "ReasonKey",
    "RowKey",
    "SeriesKey",
    "new_histogram",
    "new_second_histogram",
    "percentiles",
]

LOWEST_US = 1
HIGHEST_US = 120_000_000  # two minutes: longer than any request timeout
SIGNIFICANT_DIGITS = 3
PercentileName = Literal["p50", "p90", "p95", "p99", "p99_9"]
LATENCY_PERCENTILES: dict[PercentileName, float] = {
    "p50": 50.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p99_9": 99.9,
}
SEP = "|"
SETUP_SCENARIO = "setup"  # first tokens, fetched before a device's first task: not the measured run
# The counter of requests sent on a kept connection without the HTTP client library
# (sim.device.keepalive); every other request went through the library.
KEPT_CONNECTION = "requests by kept connection"
# Counters and device sets whose every increment is also counted per second (``events``), so a
# report can draw them over time; the name each is counted under.
TIMED_EVENTS = {"expirations": "expirations", "refreshes": "refreshes", "recovered": "recoveries"}
# Latency over time needs one histogram per endpoint per second: two significant digits (1%) are
# plenty for a chart, and keep each one about a tenth of the size of an exact one.
SECOND_SIGNIFICANT_DIGITS = 2


class RowKey(NamedTuple):
    """What a latency histogram counts: one outcome of one endpoint, scenario and algorithm."""

    endpoint: str
    scenario: str
    alg: str
    outcome: Outcome


class SeriesKey(NamedTuple):
    """What a per-second latency series counts: one endpoint in one scenario."""

    endpoint: str
    scenario: str


class ReasonKey(NamedTuple):
    """What a refusal count counts: one status and reason of one endpoint and scenario."""

    endpoint: str
    scenario: str
    status: int
    reason: str


# On the wire between processes a key is its fields joined by ``|`` (JSON object keys are
# strings); these are the only places that join or split them.


def _wire_key(key: tuple[object, ...]) -> str:
    return SEP.join(str(part) for part in key)


def _row_key(wire: str) -> RowKey:
    endpoint, scenario, alg, outcome = wire.split(SEP)
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r} in a shipped measurement")
    return RowKey(endpoint, scenario, alg, outcome)


def _series_key(wire: str) -> SeriesKey:
    endpoint, scenario = wire.split(SEP)
    return SeriesKey(endpoint, scenario)


def _reason_key(wire: str) -> ReasonKey:
    endpoint, scenario, status, reason = wire.split(SEP)
    return ReasonKey(endpoint, scenario, int(status), reason)


class _Histogram(HdrHistogram):  # type: ignore[misc]  # hdrh has no type hints
    """An HdrHistogram whose ``record_value`` is one function: the library's own index
    arithmetic (``_counts_index_for``, ``_clz`` by ``bin()``), inlined. The library's took
    3.5 us a value, and each open-model request records five (latency, corrected, its second's,
    the send lag and the generator's): a fifth of the generator's CPU per request."""

    min_value: int
    max_value: int

    def __init__(self, lowest: int, highest: int, digits: int) -> None:
        super().__init__(lowest, highest, digits)
        self._bucket_shift = self.unit_magnitude + self.sub_bucket_half_count_magnitude + 1

    def record_value(self, value: int, count: int = 1) -> bool:
        if value < 0:
            return False
        # hdrh: bucket = (64 - clz(value | sub_bucket_mask)) - unit_magnitude - (half_mag + 1)
        bucket = (value | self.sub_bucket_mask).bit_length() - self._bucket_shift
        index = (
            ((bucket + 1) << self.sub_bucket_half_count_magnitude)
            + (value >> (bucket + self.unit_magnitude))
            - self.sub_bucket_half_count
        )
        if index < 0 or index >= self.counts_len:
            return False
        self.counts[index] += count
        self.total_count += count
        if value < self.min_value:
            self.min_value = value
        if value > self.max_value:
            self.max_value = value
        return True


def new_histogram() -> HdrHistogram:
    return _Histogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def new_second_histogram() -> HdrHistogram:
    return _Histogram(LOWEST_US, HIGHEST_US, SECOND_SIGNIFICANT_DIGITS)


class _EventCounter(Counter[str]):
    """A Counter that also counts each increment of a :data:`TIMED_EVENTS` key per second."""

    def __init__(self, events: defaultdict[int, Counter[str]]) -> None:
        super().__init__()
        self.events = events

    def __setitem__(self, key: str, value: int) -> None:
        if key in TIMED_EVENTS:  # the rest (counted per request, some) skip the step's lookup
            step = value - self.get(key, 0)
            if step > 0:
                self.events[int(time.time())][TIMED_EVENTS[key]] += step
        super().__setitem__(key, value)

    def merge(self, counts: dict[str, int]) -> None:
        """Add another process's counts (its events arrive timed already)."""
        for key, value in counts.items():
            super().__setitem__(key, self.get(key, 0) + value)


class _EventSet(set[str]):
    """A set whose every ``add`` (not only the first) is counted per second under ``event``."""

    def __init__(self, event: str | None, events: defaultdict[int, Counter[str]]) -> None:
        super().__init__()
        self.event = event
        self.events = events

    def add(self, item: str) -> None:
        super().add(item)
        if self.event is not None:
            self.events[int(time.time())][self.event] += 1


class _DeviceSets(defaultdict[str, set[str]]):
    def __init__(self, events: defaultdict[int, Counter[str]]) -> None:
        super().__init__()
        self.events = events

    def __missing__(self, name: str) -> set[str]:
        made = self[name] = _EventSet(TIMED_EVENTS.get(name), self.events)
        return made


def percentiles(hist: HdrHistogram) -> Percentiles:
    """Count, percentiles, min, mean and max of a latency histogram, in microseconds."""
    if hist.get_total_count() == 0:
        return {"count": 0}
    summary: Percentiles = {"count": hist.get_total_count()}
    for name, pct in LATENCY_PERCENTILES.items():
        summary[name] = hist.get_value_at_percentile(pct)
    summary["min"] = hist.get_min_value()
    summary["mean"] = round(hist.get_mean_value(), 1)
    summary["max"] = hist.get_max_value()
    return summary


def _merged(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    """One histogram of all of ``histograms``: the one itself when there is one (a new one and
    a merge took 1-3 ms that the live progress line blocked every device for, once a second)."""
    found = list(histograms)
    if len(found) == 1:
        return found[0]
    total = new_histogram()
    for hist in found:
        total.add(hist)
    return total


class Measurements:
    """Everything one process saw, keyed by :class:`RowKey`, :class:`SeriesKey` and
    :class:`ReasonKey`."""

    def __init__(self) -> None:
        # Requests this process has started and not yet recorded: a gauge, never shipped or reset.
        self.waiting = 0
        self.reset()

    def reset(self) -> None:
        self.latency: dict[RowKey, HdrHistogram] = {}
        self.mint: dict[str, HdrHistogram] = {}  # by device algorithm
        self.timeline: defaultdict[int, Counter[str]] = defaultdict(Counter)  # second -> outcome
        self.reasons: Counter[ReasonKey] = Counter()
        self.corpus: defaultdict[str, Counter[str]] = defaultdict(Counter)  # case -> verdict
        self.setup_timeline: defaultdict[int, Counter[str]] = defaultdict(Counter)
        # second -> latency histogram (setup kept as its own scenario)
        self.latency_seconds: defaultdict[SeriesKey, dict[int, HdrHistogram]] = defaultdict(dict)
        self.events: defaultdict[int, Counter[str]] = defaultdict(Counter)  # second -> event
        self.counters = _EventCounter(self.events)
        self.telemetry: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])  # sent, acked
        # Named sets of device ids, e.g. ``expiry``: devices that ran the expiry scenario.
        self.device_sets: defaultdict[str, set[str]] = _DeviceSets(self.events)
        # Requests sent, counted as each one starts: started minus the outcome account is what
        # was still waiting for an answer when the run stopped.
        self.started = 0
        # Sums of the devices' start times (epoch s) and of the setup time (first token) of those
        # that finished it: with the stop time and the interval they give the paced requests the
        # fleet offered (sim.account.offered), each device owing one per interval from the end of
        # its setup.
        self.device_start_sum_s = 0.0
        self.device_setup_sum_s = 0.0
        # The open model only (sim.shape.schedule): latency from each paced request's intended send
        # time, and how late each went out (``send``) and the generator's share (``generator``).
        self.corrected: dict[RowKey, HdrHistogram] = {}
        self.lag: dict[str, HdrHistogram] = {}
        # Storm scenarios (sim.account.storms): per device, the moments it went through a storm (its
        # token's ``exp``, first refusal, first ``ok`` after it), each recorded once.
        self.storm_marks: defaultdict[str, dict[str, float]] = defaultdict(dict)
        # --scenario revocation (sim.account.revocation): per revoked device, each request once its
        # revoke call was sent: [started, answered (Unix s), 1 accepted / 0 not].
        self.revocation: defaultdict[str, list[list[float]]] = defaultdict(list)

    def request_started(self) -> None:
        self.started += 1
        self.waiting += 1

    def device_started(self, now_s: float) -> float:
        self.device_start_sum_s += now_s
        return now_s

    def device_ready(self, setup_s: float) -> None:
        self.counters["devices_ready"] += 1
        self.device_setup_sum_s += setup_s

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
        corrected_us: float | None = None,
    ) -> None:
        self.waiting -= 1
        key = RowKey(endpoint, scenario, alg, outcome)
        hist = self.latency.get(key)
        if hist is None:
            hist = self.latency[key] = new_histogram()
        value = min(max(int(latency_us), LOWEST_US), HIGHEST_US)
        hist.record_value(value)
        if corrected_us is not None:
            corrected = self.corrected.get(key)
            if corrected is None:
                corrected = self.corrected[key] = new_histogram()
            corrected.record_value(min(max(int(corrected_us), LOWEST_US), HIGHEST_US))
        second = int(time.time())
        self.timeline[second][outcome] += 1
        if scenario == SETUP_SCENARIO:
            self.setup_timeline[second][outcome] += 1
        by_second = self.latency_seconds[SeriesKey(endpoint, scenario)]
        second_hist = by_second.get(second)
        if second_hist is None:
            second_hist = by_second[second] = new_second_histogram()
        second_hist.record_value(value)
        if outcome != "ok":
            self.reasons[ReasonKey(endpoint, scenario, status, reason)] += 1

    def record_send(self, lag_us: float, generator_lag_us: float) -> None:
        """A paced request of the open model went out ``lag_us`` after its intended time, of
        which ``generator_lag_us`` the generator's own delay (``sim.shape.schedule``)."""
        self.counters["scheduled_sends"] += 1
        for name, value in (("send", lag_us), ("generator", generator_lag_us)):
            hist = self.lag.get(name)
            if hist is None:
                hist = self.lag[name] = new_histogram()
            hist.record_value(min(max(int(value), LOWEST_US), HIGHEST_US))

    def record_mint(self, alg: str, elapsed_us: float) -> None:
        hist = self.mint.get(alg)
        if hist is None:
            hist = self.mint[alg] = new_histogram()
        hist.record_value(min(max(int(elapsed_us), LOWEST_US), HIGHEST_US))

    # -- shipping between processes -------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """A JSON- and msgpack-safe copy (histograms HdrHistogram-encoded)."""
        return {
            "latency": {_wire_key(k): h.encode().decode() for k, h in self.latency.items()},
            "mint": {k: h.encode().decode() for k, h in self.mint.items()},
            "timeline": {str(s): dict(c) for s, c in self.timeline.items()},
            "reasons": {_wire_key(k): count for k, count in self.reasons.items()},
            "corpus": {case: dict(c) for case, c in self.corpus.items()},
            "counters": dict(self.counters),
            "telemetry": {device: list(sa) for device, sa in self.telemetry.items()},
            "device_sets": {name: sorted(ids) for name, ids in self.device_sets.items()},
            "setup_timeline": {str(s): dict(c) for s, c in self.setup_timeline.items()},
            "latency_seconds": {
                _wire_key(key): {str(s): h.encode().decode() for s, h in seconds.items()}
                for key, seconds in self.latency_seconds.items()
            },
            "events": {str(s): dict(c) for s, c in self.events.items()},
            "started": self.started,
            "device_start_sum_s": self.device_start_sum_s,
            "device_setup_sum_s": self.device_setup_sum_s,
            "corrected": {_wire_key(k): h.encode().decode() for k, h in self.corrected.items()},
            "lag": {k: h.encode().decode() for k, h in self.lag.items()},
            "storm_marks": {device: dict(marks) for device, marks in self.storm_marks.items()},
            "revocation": {device: list(rows) for device, rows in self.revocation.items()},
        }

    def live_wire(self) -> dict[str, Any]:
        """The part of the account a live metrics endpoint reads
        (:mod:`sim.account.live_metrics`): its histograms and counters, without the per-second
        series, which grow with the run."""
        return {
            "latency": {_wire_key(k): h.encode().decode() for k, h in self.latency.items()},
            "corrected": {_wire_key(k): h.encode().decode() for k, h in self.corrected.items()},
            "lag": {k: h.encode().decode() for k, h in self.lag.items()},
            "counters": dict(self.counters),
            "started": self.started,
        }

    def take_wire(self) -> dict[str, Any]:
        """What was recorded since the last call, then forget it (one report's delta)."""
        wire = self.to_wire()
        self.reset()
        return wire

    def merge_wire(self, wire: dict[str, Any]) -> None:
        for key, encoded in wire.get("latency", {}).items():
            self.latency.setdefault(_row_key(key), new_histogram()).decode_and_add(encoded)
        for key, encoded in wire.get("mint", {}).items():
            self.mint.setdefault(key, new_histogram()).decode_and_add(encoded)
        for second, counts in wire.get("timeline", {}).items():
            self.timeline[int(second)].update(counts)
        for key, count in wire.get("reasons", {}).items():
            self.reasons[_reason_key(key)] += count
        for case, counts in wire.get("corpus", {}).items():
            self.corpus[case].update(counts)
        self.counters.merge(wire.get("counters", {}))
        for device, (sent, acked) in wire.get("telemetry", {}).items():
            entry = self.telemetry[device]
            entry[0] += sent
            entry[1] += acked
        for name, ids in wire.get("device_sets", {}).items():
            self.device_sets[name].update(ids)
        for second, counts in wire.get("setup_timeline", {}).items():
            self.setup_timeline[int(second)].update(counts)
        for key, seconds in wire.get("latency_seconds", {}).items():
            by_second = self.latency_seconds[_series_key(key)]
            for second, encoded in seconds.items():
                hist = by_second.get(int(second))
                if hist is None:
                    hist = by_second[int(second)] = new_second_histogram()
                hist.decode_and_add(encoded)
        for second, counts in wire.get("events", {}).items():
            self.events[int(second)].update(counts)
        self.started += int(wire.get("started", 0))
        self.device_start_sum_s += float(wire.get("device_start_sum_s", 0.0))
        self.device_setup_sum_s += float(wire.get("device_setup_sum_s", 0.0))
        for key, encoded in wire.get("corrected", {}).items():
            self.corrected.setdefault(_row_key(key), new_histogram()).decode_and_add(encoded)
        for key, encoded in wire.get("lag", {}).items():
            self.lag.setdefault(key, new_histogram()).decode_and_add(encoded)
        for device, marks in wire.get("storm_marks", {}).items():
            device_marks = self.storm_marks[device]
            for name, moment in marks.items():
                device_marks.setdefault(name, float(moment))  # the first report of each mark wins
        for device, rows in wire.get("revocation", {}).items():
            self.revocation[device].extend([float(v) for v in row] for row in rows)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Measurements:
        merged = cls()
        merged.merge_wire(wire)
        return merged

    def progress(self) -> dict[str, Any]:
        """The account so far in a few figures, for a live progress line: requests, outcome
        counts, and p50/p99 in microseconds over every request so far."""
        outcomes: Counter[str] = Counter()
        for key, hist in self.latency.items():
            outcomes[key.outcome] += hist.get_total_count()
        total = _merged(self.latency.values())
        count = total.get_total_count()
        figures = {
            "t": time.time(),
            "requests": count,
            "outcomes": dict(outcomes),
            "p50_us": total.get_value_at_percentile(50.0) if count else None,
            "p99_us": total.get_value_at_percentile(99.0) if count else None,
        }
        if self.corrected:  # the open model's, from each paced request's intended send time
            corrected = _merged(self.corrected.values())
            figures["corrected_p99_us"] = corrected.get_value_at_percentile(99.0)
        return figures

    def write_progress(self, path: Path, **extra: Any) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**extra, **self.progress()}))
        os.replace(tmp, path)

    def write(self, path: Path, **extra: Any) -> None:
        """Write the account as JSON, atomically (a reader never sees half a file)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**extra, "measurements": self.to_wire()}))
        os.replace(tmp, path)
