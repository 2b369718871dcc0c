"""The live metrics of a run (``--metrics-port``), read by the real thing: Debian's Prometheus
server scraping a real run must end on exactly the totals of ``summary.json``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from hdrh.histogram import HdrHistogram

from sim.embedded import free_port
from sim.live_metrics import BUCKETS_S, LiveAccount
from sim.measure import Measurements

PROMETHEUS = shutil.which("prometheus")
prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Debian's prometheus server (apt-get install prometheus)"
)
RUN_LIMIT_S = 120


def fleetbench(*args: str) -> subprocess.CompletedProcess[str]:
    """``fleetbench ARGS`` as a bounded subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
        check=False,
    )


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Prometheus on a loopback port, scraping a metrics port every second; (its URL, that port)."""
    assert PROMETHEUS is not None
    metrics_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: fleetbench\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    web = f"127.0.0.1:{free_port()}"
    with open(tmp_path / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={web}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                if requests.get(f"http://{web}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "prometheus never became ready"
            time.sleep(0.2)
        yield f"http://{web}", metrics_port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _last(url: str, metric: str, by: str = "") -> dict[str, float]:
    """Each series' highest value over the run (the endpoint is gone by now, so its series are
    stale at the present instant); counters only grow, so it is the final one."""
    grouping = f" by ({by})" if by else ""
    rows = _query(url, f"sum{grouping}(max_over_time({metric}[10m]))")
    return {row["metric"].get(by, ""): float(row["value"][1]) for row in rows}


@prometheus
@pytest.mark.parametrize("workers", [1, 2])
def test_prometheus_scrapes_exactly_the_summary_totals(
    prometheus_server: tuple[str, int], tmp_path: Path, workers: int
) -> None:
    url, metrics_port = prometheus_server
    results = tmp_path / "run"
    ran = fleetbench(
        "run", "--devices", "12", "--interval", "0.2", "--duration", "4",
        "--workers", str(workers), "--metrics-port", str(metrics_port),
        "--results", str(results), "--quiet",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    # The endpoint stayed up until Prometheus had scraped the final numbers.
    assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in ran.stderr
    assert "no scrape of the final metrics" not in ran.stderr
    summary = json.loads((results / "summary.json").read_text())
    totals = summary["totals"]
    assert totals["requests"] > 0
    assert _last(url, "fleetbench_requests_total") == {"": totals["requests"]}
    assert _last(url, "fleetbench_requests_sent_total") == {"": totals["started"]}
    by_outcome = _last(url, "fleetbench_requests_total", "outcome")
    assert by_outcome == {o: n for o, n in summary["outcomes"].items() if n}
    by_endpoint = _last(url, "fleetbench_request_duration_seconds_count", "endpoint")
    expected: dict[str, float] = {}
    for row in summary["requests"]:
        expected[row["endpoint"]] = expected.get(row["endpoint"], 0) + row["count"]
    assert by_endpoint == expected
    # The run went through its stages, and its verdict was scraped as the summary's.
    assert _last(url, 'fleetbench_run_stage{fleetbench_run_stage="load"}') == {"": 1.0}
    state = {"PASS": "pass", "PASS (overloaded)": "pass_overloaded"}[summary["verdict"]["label"]]
    assert _last(url, f'fleetbench_verdict{{fleetbench_verdict="{state}"}}') == {"": 1.0}
    roles = {row["metric"]["role"] for row in _query(url, "fleetbench_generator_cpu_ratio[10m]")}
    assert roles == ({"master"} if workers == 1 else {"master", "worker"})


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


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--metrics-port", "70000"], "must be a port from 1 to 65535"),
        (["--metrics-port", "x"], "not a whole number"),
        (["--otlp", "ftp://collector"], "--otlp must be an http:// or https:// URL"),
    ],
)
def test_bad_metrics_flags_are_one_line(flags: list[str], message: str) -> None:
    ran = fleetbench("run", "--duration", "1", *flags)
    assert ran.returncode == 2
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1


def test_a_metrics_port_in_use_is_one_line(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as taken:
        port = taken.server_port
        ran = fleetbench("run", "--duration", "1", "--metrics-port", str(port))
    assert ran.returncode == 2
    assert f"--metrics-port {port} on 127.0.0.1:" in ran.stderr
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
