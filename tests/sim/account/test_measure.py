from __future__ import annotations

import json
import random

import pytest
from hdrh.histogram import HdrHistogram

from sim.account.measure import (
    HIGHEST_US,
    LOWEST_US,
    SECOND_SIGNIFICANT_DIGITS,
    SIGNIFICANT_DIGITS,
    Measurements,
    RowKey,
    SeriesKey,
    new_histogram,
    new_second_histogram,
    percentiles,
)


def test_shipped_deltas_merge_exactly() -> None:
    whole, master = Measurements(), Measurements()
    worker_a, worker_b = Measurements(), Measurements()
    for i in range(1, 2001):
        for m in (whole, worker_a if i % 2 else worker_b):
            m.record("telemetry", "verification", "ES256", "ok", i * 7.0)
            m.telemetry[f"d{i % 5}"][0] += 1
            m.device_sets["expiry"].add(f"d{i % 5}")
        if i % 500 == 0:  # a report every so often, through JSON as it would travel
            master.merge_wire(json.loads(json.dumps(worker_a.take_wire())))
            master.merge_wire(json.loads(json.dumps(worker_b.take_wire())))
    key = RowKey("telemetry", "verification", "ES256", "ok")
    assert percentiles(master.latency[key]) == percentiles(whole.latency[key])
    assert master.telemetry == whole.telemetry
    assert master.device_sets == whole.device_sets
    assert worker_a.latency == {}  # taken, so never counted twice


def test_percentiles_are_microseconds() -> None:
    m = Measurements()
    for us in (100, 200, 300, 400, 10_000):
        m.record("data", "verification", "HS256", "ok", us)
    p = percentiles(m.latency[RowKey("data", "verification", "HS256", "ok")])
    assert p["count"] == 5
    assert p["p50"] == 300
    assert 9_990 <= p["max"] <= 10_010


def test_latency_per_second_and_expiry_events_ship_exactly() -> None:
    """The report's over-time data (latency per endpoint per second, expirations, refreshes and
    recoveries per second, setup apart) survives the trip from workers to the master."""
    whole, master, worker = Measurements(), Measurements(), Measurements()
    for m in (whole, worker):
        m.record("token jwt-bearer", "setup", "ES256", "ok", 900.0)
        for i in range(1, 301):
            m.record("telemetry", "expiry", "ES256", "ok", i * 10.0)
        m.counters["expirations"] += 1
        m.counters["refreshes"] += 2
        m.device_sets["recovered"].add("d1")
        m.device_sets["recovered"].add("d1")  # a device recovers each time its token expires
    master.merge_wire(json.loads(json.dumps(worker.take_wire())))
    assert master.counters == whole.counters
    assert sum(c["expirations"] for c in master.events.values()) == 1
    assert sum(c["refreshes"] for c in master.events.values()) == 2
    assert sum(c["recoveries"] for c in master.events.values()) == 2
    assert sum(sum(c.values()) for c in master.setup_timeline.values()) == 1
    seconds = master.latency_seconds[SeriesKey("telemetry", "expiry")]
    assert sum(h.get_total_count() for h in seconds.values()) == 300
    assert 2970 <= max(h.get_max_value() for h in seconds.values()) <= 3030  # to 1 %
    assert (
        sum(
            h.get_total_count()
            for h in master.latency_seconds[SeriesKey("token jwt-bearer", "setup")].values()
        )
        == 1
    )


@pytest.mark.parametrize("digits", [SIGNIFICANT_DIGITS, SECOND_SIGNIFICANT_DIGITS])
def test_the_inlined_record_value_counts_as_the_library_does(digits: int) -> None:
    ours = new_histogram() if digits == SIGNIFICANT_DIGITS else new_second_histogram()
    library = HdrHistogram(LOWEST_US, HIGHEST_US, digits)
    rng = random.Random(24)
    edges = [0, 1, 2, 1023, 1024, 2047, 2048, HIGHEST_US, HIGHEST_US * 4, -1]
    values = edges + [rng.randint(1, HIGHEST_US) for _ in range(20_000)]
    values += [int(rng.expovariate(1 / 3_000)) for _ in range(20_000)]
    for value in values:
        assert ours.record_value(value) == library.record_value(value), value
    assert list(ours.counts) == list(library.counts)
    assert (ours.total_count, ours.min_value, ours.max_value) == (
        library.total_count,
        library.min_value,
        library.max_value,
    )
    assert ours.encode() == library.encode()
