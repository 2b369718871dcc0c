"""``python -m benchmarks.mqtt_broker`` runs end to end, small (its figures are the benchmark's)."""

from __future__ import annotations

import json

import pytest

from benchmarks.mqtt_broker import main


@pytest.mark.slow
def test_mqtt_broker_holds_every_connection_and_reports_its_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--connections", "30", "--concurrency", "10", "--hold", "0.5"]
    assert main([*argv, "--subscribe", "--reconnect", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["held"] == row["broker_counted_open"] == 30 and row["refused"] == {}
    assert row["subscribed"] and row["reconnect"]["connected"] == 30
    assert row["target_cpu_ms_per_connect"] > 0
    assert row["verified"] == 30 and row["verify_mean_us"] > 0
    assert row["connack_p50_ms"] <= row["connack_p99_ms"]
    assert row["target_rss_held_mib"] >= row["target_rss_before_mib"] > 0


def test_bad_flags_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--connections", "0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mqtt_broker: error: --connections") and err.count("\n") == 1, err
