"""The live metrics of a run (``--metrics-port``), read by the real thing: Debian's Prometheus
server scraping a real run must end on exactly the totals of ``summary.json``."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sim.account.live_metrics import LiveAccount
from sim.run.embedded import free_port
from sim.screenshot import CHROMIUM_ARGS, chromium_path

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
        "run", "--devices", "12", "--interval", "0.2", "--duration", "6",
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
    stages = _query(url, "fleetbench_run_stage[10m]")
    scrapes = _query(url, "up[10m]")
    assert _last(url, 'fleetbench_run_stage{fleetbench_run_stage="load"}') == {"": 1.0}, (
        stages,
        scrapes,
    )
    state = {"PASS": "pass", "PASS (overloaded)": "pass_overloaded"}[summary["verdict"]["label"]]
    assert _last(url, f'fleetbench_verdict{{fleetbench_verdict="{state}"}}') == {"": 1.0}
    roles = {row["metric"]["role"] for row in _query(url, "fleetbench_generator_cpu_ratio[10m]")}
    assert roles == ({"master"} if workers == 1 else {"master", "worker"})
    _check_dashboard(url, float(summary["run"]["started_at"]))


@prometheus
@pytest.mark.skipif(
    chromium_path() is None or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium (apt-get install chromium) and playwright (pip, dev extra)",
)
def test_prometheus_graph_page_draws_the_run(
    prometheus_server: tuple[str, int], tmp_path: Path
) -> None:
    """Prometheus's own graph page, in headless chromium, draws a run's throughput by outcome.
    With FLEETBENCH_METRICS_PNG set, its screenshot goes there (docs/metrics-prometheus.png)."""
    url, metrics_port = prometheus_server
    png = Path(os.environ.get("FLEETBENCH_METRICS_PNG") or tmp_path / "prometheus.png")
    # Scraped every second, a 5 s rate() draws from its third second on: 10 s give each graph a
    # line; the picture for the docs gets the 20 s it always had.
    duration = "20" if os.environ.get("FLEETBENCH_METRICS_PNG") else "10"
    ran = fleetbench(
        "run", "--devices", "20", "--interval", "0.1", "--duration", duration, "--workers", "2",
        "--scenario", "mixed", "--metrics-port", str(metrics_port),
        "--results", str(tmp_path / "run"), "--quiet",
    )  # fmt: skip
    assert ran.returncode in (0, 1), ran.stderr  # a mixed run's verdict is not this test's
    graphs = {
        "g0.expr": 'sum by (outcome) (rate(fleetbench_requests_total{scenario!="setup"}[5s]))',
        "g1.expr": "histogram_quantile(0.99, sum by (le, endpoint) "
        "(rate(fleetbench_request_duration_seconds_bucket[5s])))",
        "g2.expr": "fleetbench_generator_cpu_ratio",
    }
    query = {**graphs}
    for n in range(len(graphs)):
        query |= {f"g{n}.tab": "0", f"g{n}.range_input": "1m", f"g{n}.stacked": "0"}
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    assert executable is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(f"{url}/graph?{urllib.parse.urlencode(query)}", wait_until="networkidle")
            # Debian's Prometheus serves its classic UI: each graph drawn by rickshaw as SVG.
            drawn = f"document.querySelectorAll('.rickshaw_graph svg path').length >= {len(graphs)}"
            page.wait_for_function(f"() => {drawn}", timeout=30_000)
            legend = page.inner_text("body")
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    assert page is not None
    assert 'outcome="ok"' in legend and 'role="master"' in legend and 'role="worker"' in legend
    assert png.stat().st_size > 10_000


DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"
# Panels that draw only in the open model (--rate): this run is the closed one.
OPEN_MODEL_ONLY = ("corrected", "_lag_")


def _exposed_names() -> set[str]:
    """Every series name the endpoint can serve, from its families (empty ones included)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix
        for family in LiveAccount().snapshot()
        for suffix in suffixes.get(family.type, [""])
    }


def _check_dashboard(url: str, started_at: float) -> None:
    """docs/grafana-dashboard.json against the run Prometheus scraped: its structure is what
    Grafana imports, every query is PromQL Prometheus accepts, each metric it names is served,
    and each panel but the open model's draws this run's series."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    served = set(requests.get(f"{url}/api/v1/label/__name__/values", timeout=10).json()["data"])
    exposed = _exposed_names()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        targets = panel["targets"]
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            expr = (
                target["expr"]
                .replace("$__rate_interval", "5s")
                .replace('"$job"', '".+"')
                .replace('"$worker"', '".+"')
            )
            named = set(re.findall(r"\b(fleetbench_[a-z_]+)", expr))
            assert named <= exposed, (panel["title"], named - exposed)
            answer = requests.get(
                f"{url}/api/v1/query_range",
                params={"query": expr, "start": started_at - 5, "end": time.time(), "step": 1},
                timeout=10,
            ).json()
            assert answer["status"] == "success", (panel["title"], answer)
            if not any(part in expr for part in OPEN_MODEL_ONLY):
                assert named <= served, (panel["title"], named - served)
                assert answer["data"]["result"], (panel["title"], expr)


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_metrics_port_in_use_is_one_line(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as taken:
        port = taken.server_port
        ran = fleetbench("run", "--duration", "1", "--metrics-port", str(port))
    assert ran.returncode == 2
    assert f"--metrics-port {port} on 127.0.0.1:" in ran.stderr
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_compare_rounds_add_up_on_one_endpoint(tmp_path: Path) -> None:
    """A command with several runs (compare's rounds) serves one endpoint over all of them: its
    final scrape holds the sum of the rounds' summary.json totals and counts the runs."""
    port = free_port()
    last: list[str] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            with contextlib.suppress(requests.RequestException):  # before and between runs
                last.append(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
            done.wait(0.5)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        ran = fleetbench(
            "compare", "--algs", "HS256,ES256", "--repeat", "1", "--devices", "4",
            "--duration", "2", "--micro-budget", "0.05", "--metrics-port", str(port),
            "--results", str(tmp_path / "compare"),
        )  # fmt: skip
    finally:
        done.set()
        scraper.join(timeout=10)
    assert ran.returncode == 0, ran.stderr
    assert "no scrape of the final metrics" not in ran.stderr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "compare").glob("*/summary.json")]
    assert len(summaries) == 2
    families = {f.name: f for f in text_string_to_metric_families(last[-1])}
    served = sum(
        s.value for s in families["fleetbench_requests"].samples if s.name.endswith("_total")
    )
    assert served == sum(s["totals"]["requests"] for s in summaries) > 0
    assert families["fleetbench_runs_completed"].samples[0].value == 2
    algs = {s.labels["alg"] for s in families["fleetbench_requests"].samples}
    assert algs == {"HS256", "ES256"}
