from __future__ import annotations

import json

from sim.measure import Measurements, percentiles


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
    key = "telemetry|verification|ES256|ok"
    assert percentiles(master.latency[key]) == percentiles(whole.latency[key])
    assert master.telemetry == whole.telemetry
    assert master.device_sets == whole.device_sets
    assert worker_a.latency == {}  # taken, so never counted twice


def test_percentiles_are_microseconds() -> None:
    m = Measurements()
    for us in (100, 200, 300, 400, 10_000):
        m.record("data", "verification", "HS256", "ok", us)
    p = percentiles(m.latency["data|verification|HS256|ok"])
    assert p["count"] == 5
    assert p["p50"] == 300
    assert 9_990 <= p["max"] <= 10_010
