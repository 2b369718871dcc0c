"""``python -m benchmarks.load`` runs end to end, briefly (its figures are the benchmark's, not the
test's): it once died registering its device, when the target began refusing hand-made secrets."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.load import GOALS, main


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
@pytest.mark.slow
def test_loadbench_runs_and_prints_its_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--duration", "2", "--connections", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures["ratios"]) == set(GOALS)
    assert figures["HS256_data_harness_rps"] > 0 and figures["ES256_data_wrk_rps"] > 0
