"""locust_stats.csv counts every row, not only "Aggregated" (issue 26 item 10)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.commands import fleetbench

pytestmark = pytest.mark.slow  # each test starts real processes


def test_the_per_name_rows_add_up_to_the_aggregate(tmp_path: Path) -> None:
    done = fleetbench(
        "run", "--devices", "3", "--duration", "2", "--alg", "secret",
        "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "locust_stats.csv", newline="") as f:
        rows = {row["Name"]: int(row["Request Count"]) for row in csv.DictReader(f)}
    total = rows.pop("Aggregated")
    assert total > 0 and all(count > 0 for count in rows.values()), rows
    assert sum(rows.values()) == total
