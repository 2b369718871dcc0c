"""The live account as Prometheus metrics (:class:`sim.account.live_metrics.LiveAccount`), read
from real Measurements: buckets, runs adding up, the verdict so far. The endpoint and the real
Prometheus are tested in tests/sim/output/test_metrics_endpoint.py."""

from __future__ import annotations

from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from sim.account.live_metrics import BUCKETS_S, LiveAccount
from sim.account.measure import Measurements


def _measurements(latencies_us: list[int], outcome: str = "ok") -> Measurements:
    measurements = Measurements()
    for latency_us in latencies_us:
        measurements.request_started()
        measurements.record("telemetry", "verification", "ES256", outcome, latency_us)  # type: ignore[arg-type]
    return measurements


def _sample(families: list[Any], name: str, **labels: str) -> float:
    for family in families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_buckets_count_each_latency_at_its_bound_and_runs_add_up() -> None:
    """Two finished runs (a compare's rounds): counters add up over them, and each latency falls
    in the first bucket whose bound is not below it."""
    account = LiveAccount()
    verdict: Any = {"passed": True, "overloaded": False, "label": "PASS", "failures": []}
    account.finish(_measurements([50, 100, 101, 2_000, 2_500, 70_000_000]), verdict)
    account.finish(_measurements([999, 1_000, 1_001], "refused_valid"), verdict)
    families = account.snapshot()
    assert _sample(families, "fleetbench_requests_total") == 6
    assert _sample(families, "fleetbench_requests_total", outcome="refused_valid") == 3
    assert _sample(families, "fleetbench_requests_sent_total") == 9
    bucket = "fleetbench_request_duration_seconds_bucket"
    assert _sample(families, bucket, outcome="ok", le="0.0001") == 2
    assert _sample(families, bucket, outcome="ok", le="0.00025") == 3
    assert _sample(families, bucket, outcome="ok", le="0.0025") == 5
    assert _sample(families, bucket, outcome="ok", le="60.0") == 5
    assert _sample(families, bucket, outcome="ok", le="+Inf") == 6
    assert _sample(families, bucket, outcome="refused_valid", le="0.001") == 2
    total_s = _sample(families, "fleetbench_request_duration_seconds_sum", outcome="ok")
    assert total_s == pytest.approx(70.004751, rel=1e-3)
    assert _sample(families, "fleetbench_runs_completed_total") == 2
    assert _sample(families, "fleetbench_verdict", fleetbench_verdict="pass") == 1
    # One failed run fails the command's verdict so far.
    failed: Any = {**verdict, "passed": False, "label": "FAIL"}
    account.finish(_measurements([10]), failed)
    assert _sample(account.snapshot(), "fleetbench_verdict", fleetbench_verdict="fail") == 1


def test_hdr_histogram_bounds_are_what_the_buckets_assume() -> None:
    """The bucket reader takes HdrHistogram's counts-array index of a bound as the last index
    counted at or below it: a value just above a bound must land past that index."""
    hist = HdrHistogram(1, 120_000_000, 3)
    for bound_s in BUCKETS_S:
        bound_us = round(bound_s * 1_000_000)
        above = hist.get_highest_equivalent_value(bound_us) + 1
        assert hist.get_counts_array_index(above) > hist.get_counts_array_index(bound_us)
