"""``python -m benchmarks.storms``: a storm's time to recover, without and with backoff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs the benchmark command

REPO = Path(__file__).resolve().parents[2]


def test_recovery_with_and_without_backoff_is_printed(tmp_path: Path) -> None:
    """``python -m benchmarks.storms`` prints both times to recover (docs/benchmarks.md)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.storms", "--devices", "6", "--token-ttl", "2",
         "--duration", "6", "--interval", "0.25", "--token-alg", "HS256",
         "--results", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = {line.split("time to recover")[0].strip(): line for line in result.stdout.splitlines()}
    for label in ("without backoff", "with backoff"):
        line = lines[label]
        seconds = float(line.split("time to recover")[1].split(" s;")[0])
        assert 0 < seconds < 6, line
        assert "6/6 devices" in line
