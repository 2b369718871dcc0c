"""Devices over MQTT (--transport mqtt): short real runs against the embedded target's broker,
real Locust, real paho sessions; the account checked against the target's /admin/stats."""

from __future__ import annotations

import contextlib
import csv
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from sim.account.mqtt import CONNECT_ROW, PUBLISH_ROW
from sim.artefacts.summary_file import Summary
from sim.errors import ConfigError
from sim.profiles.http import claimed_exp
from sim.run.config import RunConfig
from sim.run.embedded import free_port
from sim.run.runner import run_benchmark
from sim.smoke.engine import SmokeConfig
from tests.sim.conftest import serve_process

DEVICES = 6


def _mqtt_run(folder: Path, **options: Any) -> Summary:
    options.setdefault("devices", DEVICES)
    options.setdefault("token_alg", "HS256")
    options.setdefault("alg", "secret")
    options.setdefault("duration_s", 5)
    options.setdefault("interval_s", 0.25)
    return run_benchmark(RunConfig(transport="mqtt", results=folder / "results", **options))


@pytest.fixture(scope="module")
def expiring_run(tmp_path_factory: pytest.TempPathFactory) -> Summary:
    """The steady state over MQTT with tokens of 2 s: every session is closed by the broker at
    its token's exp + 1 s of leeway, and opened again with a new token, several times."""
    return _mqtt_run(tmp_path_factory.mktemp("mqtt"), token_ttl=2, leeway=1, duration_s=7)


def _rows(summary: Summary) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in summary["requests"]:
        counts[row["endpoint"]] = counts.get(row["endpoint"], 0) + row["count"]
    return counts


@pytest.mark.slow
def test_every_reading_sent_is_acknowledged_and_received(expiring_run: Summary) -> None:
    summary = expiring_run
    assert summary["verdict"]["passed"], summary["verdict"]
    rows = _rows(summary)
    assert rows[CONNECT_ROW] >= DEVICES and rows[PUBLISH_ROW] > DEVICES
    telemetry = summary["telemetry"]
    assert telemetry["available"]
    # The exact account, against the target's own /admin/stats: each reading sent is
    # acknowledged, or was still waiting for its PUBACK when the run stopped.
    in_flight = summary["totals"]["in_flight_at_stop"]
    cut_off = summary["mqtt"]["publish"]["outcomes"].get("transport_error", 0)
    assert telemetry["acknowledged"] > 0
    assert telemetry["acknowledged"] <= telemetry["sent"]
    assert telemetry["sent"] <= telemetry["acknowledged"] + in_flight + cut_off
    assert telemetry.get("lost") == 0
    assert telemetry["acknowledged"] <= telemetry.get("distinct", 0) <= telemetry["sent"]
    assert summary["outcomes"]["accepted_invalid"] == 0
    # Every acknowledged reading is one the target stored: the PUBACKs counted in the publish
    # row's ok and in the telemetry account are the same readings (plus any resent ones).
    mqtt = summary["mqtt"]
    assert (
        mqtt["publish"]["outcomes"].get("ok", 0) + mqtt["resent_acknowledged"]
        == telemetry["acknowledged"]
    )


@pytest.mark.slow
def test_the_broker_closes_at_expiry_and_each_device_reconnects(expiring_run: Summary) -> None:
    mqtt = expiring_run["mqtt"]
    closes = mqtt["closes"]
    # 2 s tokens, closed at exp + 1 s, over 7 s: each device's session closed at least once.
    assert closes.get("expiry_close", 0) >= DEVICES, mqtt
    assert closes.get("network_error", 0) == 0
    assert mqtt["reconnects"] >= closes["expiry_close"]
    assert mqtt["connect"]["outcomes"].get("ok", 0) >= DEVICES + closes["expiry_close"]
    assert mqtt["connack_codes"].get("0", 0) == mqtt["connect"]["outcomes"].get("ok", 0)
    # The renewals: new tokens fetched over HTTP, one per close at least.
    assert (
        sum(r["count"] for r in expiring_run["requests"] if r["endpoint"].startswith("token "))
        >= DEVICES + closes["expiry_close"]
    )


@pytest.mark.slow
def test_locust_counts_the_mqtt_rows_as_requests_of_type_mqtt(expiring_run: Summary) -> None:
    folder = Path(expiring_run["run"]["results"])
    with open(folder / "locust_stats.csv", newline="") as f:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    assert ("MQTT", f"verification {CONNECT_ROW}") in rows
    published = rows[("MQTT", f"verification {PUBLISH_ROW}")]
    assert int(published["Request Count"]) == sum(
        r["count"] for r in expiring_run["requests"] if r["endpoint"] == PUBLISH_ROW
    )


@pytest.mark.slow
def test_an_expiry_storm_over_mqtt_recovers_and_loses_nothing(tmp_path: Path) -> None:
    summary = _mqtt_run(
        tmp_path, scenarios={"expiry": 1}, storm="expiry-storm", token_ttl=3, leeway=1,
        duration_s=8,
    )  # fmt: skip
    storm = (summary.get("storms") or {}).get("expiry")
    assert storm is not None
    assert storm["devices"] == DEVICES
    assert storm["devices_refused"] == DEVICES  # each found its session closed at expiry
    assert storm["devices_recovered"] == DEVICES
    assert storm["time_to_recover_s"] is not None and storm["time_to_recover_s"] > 0
    connects = storm.get("connect_burst")
    assert connects is not None
    assert connects["requests"] - connects["refusals"] == DEVICES
    assert 0 < connects["peak_rps"] <= connects["requests"]
    assert summary["telemetry"].get("lost") == 0
    assert summary["verdict"]["passed"], summary["verdict"]


@pytest.mark.slow
def test_the_open_model_paces_the_readings_over_mqtt(tmp_path: Path) -> None:
    """--rate: each device publishes on its own schedule; the readings are the paced requests
    (corrected latency from their intended send), the CONNECTs are not."""
    summary = _mqtt_run(tmp_path, rate_rps=24.0, duration_s=5)
    assert summary["run"]["model"] == "open"
    corrected = {r["endpoint"] for r in summary["requests"] if "corrected_latency_us" in r}
    assert corrected == {PUBLISH_ROW}
    published = summary["mqtt"]["publish"]["count"]
    assert 0 < published <= 24 * 5
    assert summary["telemetry"].get("lost") == 0


@pytest.mark.slow
def test_a_session_per_reading_connects_for_every_reading_on_its_slot(tmp_path: Path) -> None:
    """--mqtt-session per-reading in the open model: each reading its own CONNECT, which serves
    the reading's slot (the corrected row is the CONNECT's, its warm-up unjudged); the device's
    own DISCONNECTs are no closes, and the account adds up."""
    summary = _mqtt_run(
        tmp_path, mqtt_session="per-reading", rate_rps=24.0, duration_s=5, warmup_s=1
    )
    mqtt = summary["mqtt"]
    judged = [r for r in summary["requests"] if r["scenario"] == "verification"]
    corrected = {r["endpoint"] for r in judged if "corrected_latency_us" in r}
    assert corrected == {CONNECT_ROW}
    warmed = {r["endpoint"] for r in summary["requests"] if r["scenario"] == "warmup"}
    assert CONNECT_ROW in warmed
    assert mqtt["connect"]["count"] >= mqtt["publish"]["count"] > 2 * DEVICES
    assert mqtt["reconnects"] == mqtt["connect"]["count"] - DEVICES
    assert mqtt["closes"] == {}
    telemetry = summary["telemetry"]
    assert telemetry["acknowledged"] == mqtt["publish"]["outcomes"].get("ok", 0)
    assert telemetry.get("lost") == 0 and telemetry["sent"] >= telemetry.get("distinct", -1)
    assert summary["run"]["parameters"].get("mqtt_session") == "per-reading"
    assert summary["verdict"]["passed"], summary["verdict"]


@pytest.mark.slow
def test_a_reconnect_storm_over_mqtt_brings_every_session_back(tmp_path: Path) -> None:
    """The embedded target (and its broker) restarted mid-run: every session lost, every device
    connecting again once it is back, not one acknowledged reading lost."""
    summary = _mqtt_run(
        tmp_path, storm="reconnect-storm", scenarios={"verification": 1}, duration_s=12,
        interval_s=0.5,
    )  # fmt: skip
    storm = (summary.get("storms") or {}).get("reconnect")
    assert storm is not None and storm["outage_s"] is not None
    assert storm["devices"] == DEVICES
    assert storm["devices_recovered"] == DEVICES
    assert storm["time_to_recover_s"] is not None
    assert storm["acknowledged_lost"] == 0
    connects = storm.get("connect_burst")
    assert connects is not None and connects["outcomes"].get("ok", 0) == DEVICES
    closes = summary["mqtt"]["closes"]
    assert closes.get("broker_close", 0) + closes.get("network_error", 0) >= DEVICES
    assert summary["telemetry"].get("lost") == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scenarios": {"rejection": 1}}, "verification scenario, expiry-storm, reconnect-storm"),
        ({"endpoint": "config"}, "publishes telemetry"),
        ({"target": "http://127.0.0.1:9", "admin_key": "k"}, "needs --mqtt-port"),
        ({"mqtt_port": 1883}, "the embedded one has its own"),
        ({"target_workers": 2}, "drop --target-workers"),
    ],
)
def test_what_mqtt_devices_cannot_do_is_refused_in_one_line(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(transport="mqtt", **options).check()


def test_a_broker_port_without_mqtt_is_refused() -> None:
    with pytest.raises(ConfigError, match="--transport mqtt"):
        RunConfig(mqtt_port=1883).check()


@pytest.mark.slow
def test_a_revoked_devices_connect_is_refused_as_expected(tmp_path: Path) -> None:
    """--scenario revocation over MQTT: the run revokes half the fleet mid-run; each revoked
    device then presents its still unexpired token in a new CONNECT, refused (CONNACK 5)."""
    summary = _mqtt_run(
        tmp_path, storm="revocation", scenarios={"verification": 1}, revoke_percent=50,
        duration_s=7,
    )  # fmt: skip
    probes = [
        r for r in summary["requests"]
        if r["scenario"] == "revocation" and r["endpoint"] == CONNECT_ROW
    ]  # fmt: skip
    assert probes, summary["requests"]
    refused = sum(r["outcomes"].get("rejected_as_expected", 0) for r in probes)
    assert refused >= DEVICES // 2
    assert summary["outcomes"]["accepted_invalid"] == 0
    assert summary["outcomes"]["refused_valid"] == 0
    assert summary["mqtt"]["connack_codes"].get("5", 0) >= refused
    revocation = summary.get("revocation")
    assert revocation is not None
    assert summary["telemetry"].get("lost") == 0
    assert summary["verdict"]["passed"], summary["verdict"]


@pytest.mark.slow
def test_two_locust_workers_merge_the_mqtt_account_exactly(tmp_path: Path) -> None:
    summary = _mqtt_run(tmp_path, workers=2, duration_s=4)
    assert summary["run"]["locust_workers"] == 2
    mqtt, telemetry = summary["mqtt"], summary["telemetry"]
    assert mqtt["connect"]["outcomes"].get("ok", 0) == DEVICES  # each device once, one worker
    # Both workers' PUBACKs, merged: the same readings the target counted.
    assert telemetry["acknowledged"] == mqtt["publish"]["outcomes"].get("ok", 0) > 0
    assert telemetry.get("lost") == 0
    with open(Path(summary["run"]["results"]) / "locust_stats.csv", newline="") as f:
        published = [
            r for r in csv.DictReader(f) if r["Type"] == "MQTT" and r["Name"].endswith(PUBLISH_ROW)
        ]
    assert sum(int(r["Request Count"]) for r in published) == mqtt["publish"]["count"]


def test_smoke_over_mqtt_runs_the_steady_state_over_mqtt() -> None:
    config = SmokeConfig(transport="mqtt", algs=("HS256", "ES256"))
    config.check()
    runs = [run for _, run in config.runs(Path("results"))]
    assert len(runs) == 2
    assert all(r.transport == "mqtt" and r.scenarios == {"verification": 1} for r in runs)
    # Its short tokens (4 s) make the broker close every session within the run.
    assert all(r.effective_token_ttl == 4 for r in runs)


@contextlib.contextmanager
def _lax_broker(folder: Path) -> Iterator[int]:
    """A plain amqtt broker that lets anyone in and never closes a session at its token's
    expiry: the broker a device fleet must not trust."""
    port = free_port()
    config = folder / "broker.yaml"
    config.write_text(
        f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n"
    )
    amqtt = Path(sys.executable).with_name("amqtt")
    process = subprocess.Popen(
        [str(amqtt), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_a_broker_that_keeps_an_expired_session_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our token endpoint issues 2 s tokens; the broker never closes a session at expiry: the
    readings it acknowledges on a session whose token is past exp (and the clock slop) are
    accepted_invalid, and the run fails."""
    admin_key = "k" * 32
    monkeypatch.setenv("TARGET_ADMIN_KEY", admin_key)
    port = free_port()
    command = [sys.executable, "-m", "target", "--port", str(port), "--db", ":memory:",
               "--alg", "HS256", "--token-ttl", "2", "--leeway", "0"]  # fmt: skip
    with serve_process(command, port) as url, _lax_broker(tmp_path) as broker_port:
        summary = _mqtt_run(
            tmp_path, target=url, admin_key=admin_key, mqtt_port=broker_port, leeway=0,
            duration_s=7,
        )  # fmt: skip
    assert summary["mqtt"]["publish"]["outcomes"].get("accepted_invalid", 0) > 0
    assert summary["mqtt"]["closes"] == {}  # it never closed one
    assert not summary["verdict"]["passed"]
    assert any("bad token was accepted" in f for f in summary["verdict"]["failures"])


def test_a_session_goes_by_its_tokens_own_exp_claim() -> None:
    """The device reckons exp from expires_in when the token answer arrives: late by the token
    call's latency (seconds, under a storm), which made the broker's close at the claim's exp
    look early (broker_close) and judged its PUBACKs too kindly. The claim decides."""
    claimed = time.time() + 60
    token = jwt.encode({"sub": "dev-1", "exp": int(claimed)}, "k" * 32, algorithm="HS256")
    assert claimed_exp(token, int(claimed) + 5.0) == int(claimed)
    assert claimed_exp(token, int(claimed) - 5.0) == int(claimed) - 5.0  # never later
    assert claimed_exp("not-a-jwt", claimed) == claimed
