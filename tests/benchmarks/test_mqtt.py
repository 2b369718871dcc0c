"""``python -m benchmarks.mqtt``: an MQTT fleet's connects and memory, then its expiry storm."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the test runs the benchmark command

REPO = Path(__file__).resolve().parents[2]
DEVICES = 20


def test_connects_memory_and_the_storm_are_printed(tmp_path: Path) -> None:
    """The figures docs/mqtt.md quotes: connect rate, CONNACK p99 beside the target's verify
    time, memory per device; the storm's reconnects, time to recover and readings lost."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.mqtt", "--devices", str(DEVICES), "--settle", "2",
         "--interval", "0.5", "--token-alg", "HS256", "--results", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    connected = re.search(r"connected: (\d+) CONNACK 0 of (\d+) CONNECTs from (\d+) devices", out)
    assert connected is not None, out
    assert int(connected.group(1)) >= DEVICES and connected.group(3) == str(DEVICES)
    assert re.search(r"connect rate \d+/s \(peak \d+/s\)", out), out
    assert re.search(r"CONNACK p50 [\d.]+ ms, p99 [\d.]+ ms; the target's verify time: HS256", out)
    assert re.search(r"holding the fleet \d+ MiB, -?[\d.]+ KiB per device", out), out
    assert f"{DEVICES}/{DEVICES} devices; acknowledged readings lost 0" in out, out
    recover = re.search(r"time to recover ([\d.]+) s", out)
    assert recover is not None and float(recover.group(1)) > 0, out
    reconnects = re.search(r"reconnects (\d+) CONNECTs \(peak (\d+)/s", out)
    assert reconnects is not None and int(reconnects.group(1)) >= DEVICES, out
    # --settle is the connected runs' time too (it once held them to 15 s each, whatever it said).
    for size in (DEVICES // 10, DEVICES):
        summary = json.loads((tmp_path / f"connected-{size}" / "summary.json").read_text())
        assert summary["run"]["parameters"]["duration_s"] == 2, size


def test_a_bad_option_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.mqtt", "--devices", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
