"""Push the live account over OTLP/HTTP (``--otlp URL``), for teams with an OpenTelemetry
collector and no scraper.

The metrics are the Prometheus collector's own families (:mod:`sim.account.live_metrics`),
translated into the OpenTelemetry SDK's data points and sent by its OTLP/HTTP exporter every
few seconds and once more at the end, so both ways carry the same numbers from one reading of
the account.
The SDK's instruments are not used: they keep their own aggregation, which would be a second
set of books (and has no observable histogram for our HdrHistograms).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as PromMetric

from sim import __version__
from sim.account.live_metrics import BUCKETS_S, LiveAccount

__all__ = ["OtlpPusher", "metrics_data"]

EXPORT_TIMEOUT_MS = 5_000
# The Prometheus families carry no min and max: OTLP's are optional, and None leaves them unset.
_NO_MIN_MAX: dict[str, Any] = {"min": None, "max": None}
UNITS = {"seconds": "s", "ratio": "1"}  # Prometheus unit suffix -> UCUM


def _otlp_number(value: float) -> int | float:
    """Counts as OTLP integers (prometheus_client holds every value as a float)."""
    return int(value) if float(value).is_integer() else value


def _labels(sample_labels: dict[str, str], drop: str = "") -> dict[str, Any]:
    return {k: v for k, v in sorted(sample_labels.items()) if k != drop}


def _translate(family: PromMetric, start_ns: int, now_ns: int) -> Metric | None:
    unit = UNITS.get(family.unit, "1" if family.type == "stateset" else "")
    if family.type == "histogram":
        buckets: defaultdict[tuple[tuple[str, str], ...], dict[str, float]] = defaultdict(dict)
        sums: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            key = tuple(_labels(sample.labels, "le").items())
            if sample.name.endswith("_bucket"):
                buckets[key][sample.labels["le"]] = sample.value
            elif sample.name.endswith("_sum"):
                sums[key] = sample.value
        points = []
        for key, cumulative in buckets.items():
            ordered = [cumulative[repr(b)] for b in BUCKETS_S] + [cumulative["+Inf"]]
            counts = [int(b - a) for a, b in zip([0.0, *ordered[:-1]], ordered, strict=True)]
            points.append(
                HistogramDataPoint(
                    attributes=dict(key),
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now_ns,
                    count=int(ordered[-1]),
                    sum=sums.get(key, 0.0),
                    bucket_counts=counts,
                    explicit_bounds=list(BUCKETS_S),
                    **_NO_MIN_MAX,
                )
            )
        data: Sum | Gauge | Histogram = Histogram(points, AggregationTemporality.CUMULATIVE)
    else:
        number_points = [
            NumberDataPoint(
                attributes=_labels(sample.labels),
                start_time_unix_nano=start_ns,
                time_unix_nano=now_ns,
                value=_otlp_number(sample.value),
            )
            for sample in family.samples
            if not sample.name.endswith("_created") and sample.value == sample.value  # not NaN
        ]
        if family.type == "counter":
            data = Sum(number_points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        else:
            data = Gauge(number_points)
    # OpenTelemetry names carry no unit (it is a field of its own); a collector's Prometheus
    # exporter adds the suffixes back, so both ways end on the same names.
    name = family.name.removesuffix(f"_{family.unit}") if family.unit else family.name
    return Metric(name=name, description=family.documentation, unit=unit, data=data)


def metrics_data(families: Iterable[PromMetric], start_ns: int) -> MetricsData:
    """The families as one OTLP export: cumulative sums, gauges and explicit-bucket histograms."""
    now_ns = time.time_ns()
    metrics = [m for f in families if (m := _translate(f, start_ns, now_ns)) is not None]
    scope = ScopeMetrics(InstrumentationScope("fleetbench", __version__), metrics, "")
    resource = Resource.create({"service.name": "fleetbench", "service.version": __version__})
    return MetricsData([ResourceMetrics(resource, [scope], "")])


class OtlpPusher:
    """Every ``interval_s`` on its own thread, and once more on :meth:`stop`."""

    def __init__(
        self,
        account: LiveAccount,
        url: str,
        interval_s: float,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        # The SDK logs every retry of every push; the command says once that pushing fails.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
        self._account = account
        self._url = url
        self._log = log
        self._exporter = OTLPMetricExporter(endpoint=url)
        self._interval_s = interval_s
        self._start_ns = time.time_ns()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleetbench-otlp", daemon=True)
        self.pushed = 0
        self.failed = 0

    def start(self) -> OtlpPusher:
        self._thread.start()
        return self

    def push(self) -> bool:
        try:
            data = metrics_data(self._account.snapshot(), self._start_ns)
            result = self._exporter.export(data, timeout_millis=EXPORT_TIMEOUT_MS)
        except Exception:  # a push must never break the run it reports on; counted as failed
            result = MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self.pushed += 1
            return True
        self.failed += 1
        if self.failed == 1:
            self._log(
                f"an OTLP push to {self._url} failed; trying again every {self._interval_s:g} s"
            )
        return False

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.push()

    def stop(self) -> bool:
        """Stop pushing; push the final numbers. True when that last push was received."""
        self._stopping.set()
        self._thread.join(timeout=EXPORT_TIMEOUT_MS / 1000 + 1)
        try:
            return self.push()
        finally:
            self._exporter.shutdown()
