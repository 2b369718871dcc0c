"""``python -m benchmarks.held`` runs end to end, briefly (its figures are the benchmark's, not the
test's): the closed loop's maximum, the open model's steps down from it, the held rate's ratio."""

from __future__ import annotations

import json

import pytest

from benchmarks.held import HELD_LAG_P99_US, main
from sim.account.offered import MAX_SHORTFALL


@pytest.mark.slow
def test_held_steps_down_from_the_closed_loop_s_maximum(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--algs", "HS256", "--devices", "10", "--duration", "2", "--step", "0.5"]
    assert main([*argv, "--lowest", "0.5", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    maximum = row["closed_max_rps"]
    assert row["alg"] == "HS256" and maximum > 0
    asked = [step["rate_rps"] for step in row["steps"]]
    assert asked[0] == round(maximum) and asked[1:] in ([], [round(maximum * 0.5)])
    for step in row["steps"]:
        within = step["shortfall"] <= MAX_SHORTFALL
        assert step["held"] == (within and step["generator_lag_p99_us"] <= HELD_LAG_P99_US)
    held = [step["rate_rps"] for step in row["steps"] if step["held"]]
    assert row["held_rps"] == (held[0] if held else None)
    assert row["ratio"] == (round(held[0] / maximum, 3) if held else None)


@pytest.mark.slow
def test_an_unknown_algorithm_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--algs", "XS999", "--duration", "1"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("held: error:") and err.count("\n") == 1, err
