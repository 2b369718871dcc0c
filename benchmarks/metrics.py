"""``python -m benchmarks.metrics``: what serving live metrics costs the generator, in one run.

One embedded HS256 target on its own core, Locust on the other; the closed loop at full speed
(``--interval 0``: each device sends its next request as soon as the last is answered) against
``/api/data``, the cheapest authenticated call, so the generator is the busiest it gets. Rounds
without (A) and with (B) ``--metrics-port`` run in blocks A B B A (``--blocks`` of them, rounds
of ``--duration`` s; one fleet, one target), and in the rounds with metrics a scraper reads the
endpoint every second, as a Prometheus at a 1 s scrape interval would.

Each pair gives a ratio with/without; a block's figure is the geometric mean of its two pairs'
ratios, which cancels a steady order effect (on this machine the second round of a pair ran up
to 30 % slower whichever side it was), and the median over blocks is judged against the goal:
exporting costs at most 3 % of the requests per second (ratio >= 0.97). The generator's CPU per
request is paired the same way: it shows the cost even when the target, not the generator, sets
the pace. Each round with metrics also checks that its final scrape equals its ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from sim.artefacts.summary_file import Summary
from sim.output.metrics_endpoint import MetricsOptions, exporting
from sim.processes import split_cores
from sim.run.config import RunConfig
from sim.run.embedded import EmbeddedTarget, free_port
from sim.run.runner import fleet_file, run_benchmark

__all__ = ["GOAL_RATIO", "main"]

GOAL_RATIO = 0.97  # exporting costs the generator at most 3 % of its throughput
SCRAPE_EVERY_S = 1.0


class _Scraper:
    """Reads ``url`` every second on a thread: how many scrapes, and the last request total."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.scrapes = 0
        self.requests_total: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                text = requests.get(self.url, timeout=5).text
            except requests.RequestException:
                text = ""  # between rounds: the endpoint comes and goes with each run
            for family in text_string_to_metric_families(text):
                if family.name == "fleetbench_requests":
                    self.scrapes += 1
                    self.requests_total = sum(
                        s.value for s in family.samples if s.name.endswith("_total")
                    )
            self._stop.wait(SCRAPE_EVERY_S)

    @contextmanager
    def running(self) -> Iterator[_Scraper]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=10)


def _figures(summary: Summary) -> dict[str, Any]:
    """Throughput, and who was busy: the generator's CPU per request says what exporting costs
    it even when the target, not the generator, sets the pace."""
    rps = sum(r["rps"] for r in summary["requests"] if r["scenario"] == "verification")
    cpu_s = sum(p["cpu_percent_mean"] for p in summary["generator"]["processes"]) / 100
    requests = summary["totals"]["requests"]
    return {
        "rps": rps,
        "generator_cpu_us_per_request": round(
            cpu_s * summary["run"]["elapsed_s"] / requests * 1e6 if requests else 0.0, 1
        ),
        "generator_saturated": summary["generator"]["saturated"],
    }


def _round(config: RunConfig, metrics: bool) -> dict[str, Any]:
    if not metrics:
        return {"metrics": False, **_figures(run_benchmark(config))}
    port = free_port()
    scraper = _Scraper(f"http://127.0.0.1:{port}/metrics")
    with scraper.running(), exporting(MetricsOptions(port=port)):
        summary = run_benchmark(config)
    scraped, total = scraper.requests_total, summary["totals"]["requests"]
    if scraped != total:
        raise RuntimeError(f"the final scrape read {scraped} requests, summary.json {total}")
    return {"metrics": True, **_figures(summary), "scrapes": scraper.scrapes}


def _ratios(rounds: list[dict[str, Any]], figure: str) -> list[float]:
    """Per pair, the figure with metrics over the figure without."""
    ratios = []
    for pair in sorted({r["pair"] for r in rounds}):
        without, with_ = (
            next(r[figure] for r in rounds if r["pair"] == pair and r["metrics"] is m)
            for m in (False, True)
        )
        ratios.append(with_ / without if without else 0.0)
    return ratios


def _by_block(pair_ratios: list[float]) -> list[float]:
    """Each block's A B and B A pairs as one figure: their geometric mean."""
    return [math.sqrt(a * b) for a, b in zip(pair_ratios[::2], pair_ratios[1::2], strict=True)]


def measure(blocks: int, duration_s: int, devices: int) -> dict[str, Any]:
    """``blocks`` blocks of rounds A B B A (A without metrics, B with); figures and medians."""
    target_cpus, load_cpus = split_cores(True)
    folder = Path(tempfile.mkdtemp(prefix="fleetbench-metricsbench-"))
    rounds: list[dict[str, Any]] = []
    with EmbeddedTarget("HS256", cpus=target_cpus) as target:
        config = RunConfig(
            target=target.url,
            admin_key=target.admin_key,
            devices=devices,
            alg="secret",
            token_alg="HS256",
            scenarios={"verification": 1},
            endpoint="data",
            interval_s=0.0,
            duration_s=float(duration_s),
            generator_cpus=load_cpus,
        )
        config = replace(config, fleet=fleet_file(config, folder))
        for pair in range(2 * blocks):
            order = (False, True) if pair % 2 == 0 else (True, False)
            for metrics in order:
                results = folder / f"pair{pair + 1}-{'with' if metrics else 'without'}"
                rounds.append(
                    {"pair": pair + 1, **_round(replace(config, results=results), metrics)}
                )
    ratios = _ratios(rounds, "rps")
    cpu_ratios = _ratios(rounds, "generator_cpu_us_per_request")
    block_ratios, block_cpu_ratios = _by_block(ratios), _by_block(cpu_ratios)
    median = statistics.median(block_ratios)
    return {
        "devices": devices,
        "duration_s": duration_s,
        "rounds": rounds,
        "ratios": [round(r, 4) for r in ratios],
        "block_ratios": [round(r, 4) for r in block_ratios],
        "median_ratio": round(median, 4),
        "cpu_per_request_ratios": [round(r, 4) for r in cpu_ratios],
        "block_cpu_per_request_ratios": [round(r, 4) for r in block_cpu_ratios],
        "median_cpu_per_request_ratio": round(statistics.median(block_cpu_ratios), 4),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": median >= GOAL_RATIO,
        "results": str(folder),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.metrics", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--blocks", type=int, default=4, help="blocks A B B A (default 4)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per round (default 8)")
    parser.add_argument("--devices", type=int, default=32, help="devices = connections")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.blocks, args.duration, args.devices)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for r in figures["rounds"]:
        side = "with metrics   " if r["metrics"] else "without metrics"
        scrapes = f"  ({r['scrapes']} scrapes)" if r["metrics"] else ""
        print(
            f"pair {r['pair']}  {side}  {r['rps']:9.1f} req/s  generator "
            f"{r['generator_cpu_us_per_request']:6.1f} µs CPU/request"
            f"{' SATURATED' if r['generator_saturated'] else ''}{scrapes}"
        )
    for label, pairs, per_block, median in (
        ("req/s", "ratios", "block_ratios", "median_ratio"),
        (
            "generator CPU per request",
            "cpu_per_request_ratios",
            "block_cpu_per_request_ratios",
            "median_cpu_per_request_ratio",
        ),
    ):
        print(
            f"with/without {label}: pairs {', '.join(f'{r:.3f}' for r in figures[pairs])}; "
            f"blocks {', '.join(f'{r:.3f}' for r in figures[per_block])}; "
            f"median {figures[median]:.3f}"
        )
    verdict = "meets" if figures["meets_goal"] else "MISSES"
    print(
        f"median ratio {figures['median_ratio']:.3f}: exporting costs "
        f"{(1 - figures['median_ratio']) * 100:.1f} % ({verdict} goal <= 3 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
