"""``--otlp URL``: the live metrics pushed by the OpenTelemetry SDK's OTLP/HTTP exporter, received
by a real OTLP/HTTP receiver on loopback (the protobuf decoded with opentelemetry-proto; the
OpenTelemetry Collector is not packaged here), must end on exactly the totals of
``summary.json``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sim.account.live_metrics import BUCKETS_S
from sim.errors import ConfigError
from sim.output.metrics_endpoint import otlp_endpoint
from tests.sim.output.test_metrics_endpoint import fleetbench

metrics_service = pytest.importorskip(
    "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
    reason="needs opentelemetry-proto (the otlp extra)",
)
ExportMetricsServiceRequest = metrics_service.ExportMetricsServiceRequest
otlp_push = pytest.importorskip(
    "sim.output.otlp_push", reason="needs the OpenTelemetry SDK (otlp extra)"
)


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP metrics receiver: each protobuf export decoded and kept."""

    received: list[Any]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/metrics" or self.headers["Content-Type"] != "application/x-protobuf":
            self.send_response(400)
            self.end_headers()
            return
        export = ExportMetricsServiceRequest()
        export.ParseFromString(body)
        self.received.append(export)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def _otlp_metrics(export: Any) -> dict[str, Any]:
    return {
        metric.name: metric
        for resource in export.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


@pytest.mark.slow
def test_otlp_push_ends_on_exactly_the_summary_totals(
    otlp_receiver: tuple[str, list[Any]], tmp_path: Path
) -> None:
    url, received = otlp_receiver
    results = tmp_path / "run"
    ran = fleetbench(
        "run", "--devices", "8", "--interval", "0.2", "--duration", "3",
        "--otlp", url, "--results", str(results), "--quiet",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "was not received" not in ran.stderr
    summary = json.loads((results / "summary.json").read_text())
    assert received, "no OTLP export arrived"
    final = _otlp_metrics(received[-1])
    requests_sum = final["fleetbench_requests"].sum
    assert requests_sum.is_monotonic
    assert all(p.WhichOneof("value") == "as_int" for p in requests_sum.data_points)
    assert sum(p.as_int for p in requests_sum.data_points) == summary["totals"]["requests"]
    outcomes: dict[str, float] = {}
    for point in requests_sum.data_points:
        attributes = {a.key: a.value.string_value for a in point.attributes}
        outcomes[attributes["outcome"]] = outcomes.get(attributes["outcome"], 0) + point.as_int
    assert outcomes == {o: n for o, n in summary["outcomes"].items() if n}
    latency = final["fleetbench_request_duration"]
    assert latency.unit == "s"
    points = latency.histogram.data_points
    assert sum(p.count for p in points) == summary["totals"]["requests"]
    assert all(sum(p.bucket_counts) == p.count for p in points)
    assert all(list(p.explicit_bounds) == list(BUCKETS_S) for p in points)
    resource = {
        a.key: a.value.string_value for a in received[-1].resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "fleetbench"


def test_a_collector_base_url_gets_the_metrics_path() -> None:
    assert otlp_endpoint("http://collector:4318") == "http://collector:4318/v1/metrics"
    assert otlp_endpoint("http://collector:4318/") == "http://collector:4318/v1/metrics"
    assert otlp_endpoint("https://c.example/otlp/v1/metrics") == "https://c.example/otlp/v1/metrics"
    with pytest.raises(ConfigError, match="http:// or https://"):
        otlp_endpoint("collector:4318")
