"""``fleetbench compare`` and ``capacity`` with ``--transport mqtt``: real brokers (the embedded
target's, and ours reached through the shipped ``emqx-jwt`` profile), real short runs, their
artefacts read back against their types."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest

from sim.artefacts.codec import read_capacity, read_compare
from sim.artefacts.compare_file import CompareFile, figure_of
from sim.artefacts.summary_file import Summary
from sim.run.embedded import EmbeddedTarget
from sim.sweep.capacity import judge, parse_slo
from sim.sweep.compare import MQTT_FIGURES, account_lines, add_round_account, new_account
from tests.commands import fleetbench, fleetbench_here
from tests.sim.conftest import SUMMARIES

DEVICES = 5


def _summary(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return summary


@pytest.mark.slow
def test_compare_over_mqtt_gives_both_algorithms_connect_and_publish_rows(
    tmp_path: Path,
) -> None:
    results = tmp_path / "compare"
    done = fleetbench(
        "compare", "--transport", "mqtt", "--algs", "HS256,ES256", "--repeat", "1",
        "--micro-budget", "0.02", "--duration", "3", "--devices", str(DEVICES),
        "--results", str(results), timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    path = results / "compare.json"
    result = read_compare(path)
    assert result == json.loads(path.read_text())  # every key typed: none dropped
    assert result["parameters"].get("transport") == "mqtt"
    assert result["parameters"].get("mqtt_session") == "per-reading"
    for alg in ("HS256", "ES256"):
        entry = result["algorithms"][alg]
        for name in MQTT_FIGURES:
            assert figure_of(entry, name) > 0, (alg, name)
        assert "e2e_rps" not in entry
        account = entry.get("telemetry")
        assert account is not None and account["exact"], account
        assert account["sent"] > 0 and account["lost"] == 0
        assert account["acknowledged"] + account["unacknowledged"] == account["received"]
        summary = _summary(results / f"e2e-{alg}-1")
        assert summary["run"]["target"]["token_alg"] == alg
        assert summary["run"]["parameters"]["mqtt_session"] == "per-reading"
        mqtt = summary["mqtt"]
        # A session per reading: a CONNECT for every reading, far more than one per device.
        assert mqtt["connect"]["count"] >= mqtt["publish"]["count"] > DEVICES
        assert mqtt["closes"] == {}  # the device's own DISCONNECTs are not losses
        # The broker verified each CONNECT timed, and at most one more per device (cut off by
        # the stop before its CONNACK was read).
        verified = summary["server"]["verify"][alg]["count"]
        assert mqtt["connect"]["count"] <= verified <= mqtt["connect"]["count"] + DEVICES
    table = done.stdout
    assert "mqtt_connect_p99_us" in table and "mqtt_publish_p99_us" in table
    assert table.count("lost 0: exact") == 2
    assert "MQTT latency" in (results / "report.html").read_text()


def _capacity(tmp_path: Path, *args: str, steps: int = 2) -> tuple[int, Any, str]:
    results = tmp_path / "capacity"
    done = fleetbench(
        "capacity", "--transport", "mqtt", *args, "--devices", str(DEVICES),
        "--step-duration", "3", "--warmup", "1", "--max-steps", str(steps), "--narrow-steps", "0",
        "--slo", "p99=2s", "--error-budget", "5%", "--results", str(results), timeout=240,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    path = results / "capacity.json"
    result = read_capacity(path)
    assert result == json.loads(path.read_text())
    return done.returncode, result, done.stdout


def _found_a_figure_or_a_floor(result: Any, alg: str) -> None:
    entry = result["algorithms"][alg]
    steps = entry["steps"]
    assert steps and [s["rate_rps"] for s in steps] == [10.0, 20.0][: len(steps)]
    # A figure (a rate met and the knee above it), or a floor (the generator was the limit, or
    # the objective still held at the last rate): on a busy machine either is honest.
    assert entry["max_rate"] is not None or entry["generator_limited"], entry
    if entry["max_rate"] is not None and entry["knee_rps"] is None:
        assert entry["floor"]
    for step in steps:
        summary = _summary(Path(step["results"]))
        mqtt = summary["mqtt"]
        assert mqtt["connect"]["count"] > DEVICES  # a CONNECT per reading
        # The searched rate is CONNECTs: the paced (corrected) row is mqtt connect.
        corrected = [r["endpoint"] for r in summary["requests"] if "corrected_latency_us" in r]
        assert corrected == ["mqtt connect"], corrected
        assert summary["telemetry"].get("lost") == 0


@pytest.mark.slow
def test_capacity_over_mqtt_searches_connects_per_second(tmp_path: Path) -> None:
    code, result, stdout = _capacity(tmp_path, "--algs", "HS256", "--start-rate", "10")
    parameters = result["parameters"]
    assert parameters["transport"] == "mqtt" and parameters["rate_of"] == "connects"
    assert parameters["mqtt_session"] == "per-reading"
    _found_a_figure_or_a_floor(result, "HS256")
    assert result["algorithms"]["HS256"]["second_opinion"] is None  # HTTP's client only
    # The exact account is part of the objective: the same step with one acknowledged reading
    # the target does not hold is judged lost, not met, whatever its latency.
    step = result["algorithms"]["HS256"]["steps"][0]
    summary = cast(Summary, _summary(Path(step["results"])))
    objective, budget = parse_slo("p99=2s"), 0.05
    assert judge(summary, objective, budget, "raise")["lost"] == 0
    summary["telemetry"]["lost"] = 1
    judged = judge(summary, objective, budget, "raise")
    assert (judged["verdict"], judged["met"], judged["lost"]) == ("lost", False, 1)
    assert "CONNECTs/s" in stdout
    assert code == 0, stdout


@pytest.mark.slow
def test_capacity_over_mqtt_through_a_profiles_broker_section(tmp_path: Path) -> None:
    """The shipped EMQX example drives our target's broker as another broker's: the search's
    steps share one fleet and its tokens, each step connecting through the [mqtt] section."""
    with EmbeddedTarget("ES256", mqtt=True) as target:
        code, result, stdout = _capacity(
            tmp_path, "--algs", "ES256", "--start-rate", "10", "--target", target.url,
            "--profile", "emqx-jwt", "--admin-key", target.admin_key,
            "--mqtt-port", str(target.mqtt_port), steps=1,
        )  # fmt: skip
    assert result["targets"]["ES256"] == {
        "url": target.url, "embedded": False, "profile": "emqx-jwt",
        "mqtt_port": target.mqtt_port,
    }  # fmt: skip
    _found_a_figure_or_a_floor(result, "ES256")
    assert code == 0, stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("compare", "--transport", "mqtt", "--micro-only"), "drop --micro-only"),
        (("compare", "--mqtt-session", "held"), "--mqtt-session is the sessions of --transport"),
        (("capacity", "--mqtt-port", "1883"), "--mqtt-port is the broker of --transport mqtt"),
        (("capacity", "--transport", "mqtt", "--mqtt-port", "1883"),
         "--mqtt-port names a --target's broker"),
        (("capacity", "--transport", "mqtt", "--algs", "HS256", "--mqtt-port", "HS256=x",
          "--target", "http://127.0.0.1:9", "--admin-key", "k"), "--mqtt-port 'x': a port number"),
        (("compare", "--transport", "mqtt", "--target", "http://127.0.0.1:9", "--admin-key",
          "k"), "--transport mqtt with --target needs --mqtt-port"),
        (("compare", "--transport", "mqtt", "--endpoint", "data"), "publishes telemetry"),
        (("capacity", "--transport", "mqtt", "--algs", "HS256", "--target", "http://127.0.0.1:9",
          "--profile", "seed-express", "--mqtt-port", "1883"), "needs the profile's [mqtt]"),
        (("run", "--transport", "mqtt", "--mqtt-session", "per-reading", "--scenario",
          "expiry-storm", "--duration", "30"), "per-reading runs the steady state"),
        (("run", "--mqtt-session", "per-reading"), "--mqtt-session is the sessions of"),
    ],
)  # fmt: skip
def test_mqtt_sweeps_misused_are_one_line_and_exit_2(
    args: tuple[str, ...], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", "mqtt-sweeps-test-secret")
    done = fleetbench_here(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_the_rounds_account_is_exact_only_with_the_targets_own_count() -> None:
    """compare's account over its rounds, from a real MQTT run's summary: exact when the target
    held every acknowledged reading; not exact with one lost, nor without the target's count."""
    summary = cast(Summary, json.loads((SUMMARIES / "mqtt.json").read_text()))
    sent = summary["telemetry"]["sent"]
    account = new_account()
    for _ in range(2):
        add_round_account(account, summary)
    assert account["rounds"] == 2 and account["sent"] == account["received"] == 2 * sent
    assert account["available"] and account["exact"]
    lost = copy.deepcopy(summary)
    lost["telemetry"]["lost"] = 1
    lost["telemetry"]["distinct"] = sent - 1
    add_round_account(account, lost)
    assert (account["lost"], account["exact"]) == (1, False)  # one round lost one: not exact
    foreign = copy.deepcopy(summary)
    foreign["telemetry"] = {"available": False, "devices": 6, "sent": sent, "acknowledged": sent}
    unknown = new_account()
    add_round_account(unknown, foreign)
    assert not unknown["available"] and not unknown["exact"]
    result = cast(
        CompareFile,
        {"algorithms": {"HS256": {"telemetry": account}, "ES256": {"telemetry": unknown}}},
    )
    lines = account_lines(result)
    assert "lost 1: NOT exact" in lines[0] and "over 3 rounds" in lines[0]
    assert "count is not available" in lines[1] and "over 1 round:" in lines[1]
