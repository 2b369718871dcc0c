"""``python -m benchmarks.metrics`` runs its paired rounds and prints its figures (a short run: the
speed goal itself is judged by the bench's own printed median, never by a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_metricsbench_pairs_rounds_and_checks_its_scrapes() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "benchmarks.metrics", "--blocks", "1", "--duration", "2",
         "--devices", "4", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    figures = json.loads(ran.stdout)
    rounds = figures["rounds"]
    assert [r["metrics"] for r in rounds] == [False, True, True, False]  # A B B A
    assert all(r["rps"] > 0 and r["generator_cpu_us_per_request"] > 0 for r in rounds)
    # The rounds with metrics were scraped, and each final scrape equalled its summary.json (the
    # bench fails otherwise).
    assert all(r["scrapes"] >= 1 for r in rounds if r["metrics"])
    # The block's figure is the geometric mean of its two pairs (the printed ratios are rounded to
    # four places, so the mean of the rounded pairs may differ from the block's in the last place).
    first, second = figures["ratios"]
    assert figures["block_ratios"] == [pytest.approx((first * second) ** 0.5, abs=2e-4)]
    assert figures["median_ratio"] == figures["block_ratios"][0]
