"""Short real runs: embedded target, real Locust, assertions on summary.json."""

from __future__ import annotations

import contextlib
import csv
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from sim.artefacts.summary_file import RequestRow, Summary, outcome_counts
from sim.errors import ConfigError
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark
from tests.conftest import StartTarget


def _run(tmp_path: Path, **options: Any) -> Summary:
    options.setdefault("devices", 8)
    options.setdefault("duration_s", 5)
    options.setdefault("interval_s", 0.1)
    summary = run_benchmark(RunConfig(results=tmp_path / "results", **options))
    on_disk = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert on_disk["schema"] == "fleetbench.summary/1"
    assert on_disk["outcomes"] == summary["outcomes"]
    return summary


def _locust_requests(folder: Path) -> int:
    """Locust's own final request count (merged by Locust across its workers)."""
    entries = json.loads((folder / "locust_stats.json").read_text())
    return sum(e["num_requests"] for e in entries)


def _rows(summary: Summary, scenario: str) -> dict[str, RequestRow]:
    return {r["endpoint"]: r for r in summary["requests"] if r["scenario"] == scenario}


@pytest.mark.slow
def test_verification_and_issuance(tmp_path: Path) -> None:
    summary = _run(tmp_path, scenarios={"issuance": 1, "verification": 3}, token_alg="HS256")
    outcomes = summary["outcomes"]
    assert outcomes["ok"] > 50
    assert outcomes["ok"] == summary["totals"]["requests"]
    issuance = _rows(summary, "issuance")
    assert issuance["token client_credentials"]["count"] > 0
    assert issuance["token jwt-bearer"]["count"] > 0
    telemetry = _rows(summary, "verification")["telemetry"]
    assert telemetry["alg"] == "HS256"
    assert 0 < telemetry["latency_us"]["p50"] <= telemetry["latency_us"]["p99"]
    assert summary["mint_us"]["ES256"]["count"] > 0
    assert summary["server"]["verify"]["HS256"]["count"] >= telemetry["count"]
    account = summary["telemetry"]
    assert account["lost"] == 0 and account["duplicated"] == 0
    assert account["acknowledged"] == telemetry["count"]
    assert account["received"] >= account["acknowledged"]
    assert summary["totals"]["devices"] == 8
    assert summary["generator"]["processes"][0]["role"] == "master"
    assert summary["verdict"]["passed"]
    assert (tmp_path / "results" / "report.html").stat().st_size > 10_000
    assert (tmp_path / "results" / "locust.html").exists()


@pytest.mark.slow
def test_expiry_every_device_refreshes_and_continues(tmp_path: Path) -> None:
    summary = _run(
        tmp_path, scenarios={"expiry": 1}, token_ttl=2, leeway=0, duration_s=6, interval_s=0.25
    )
    expiry = summary["expiry"]
    assert expiry is not None
    assert expiry["devices"] == 8
    assert expiry["devices_expired"] == 8
    assert expiry["devices_recovered"] == 8
    assert expiry["expirations"] >= 8 and expiry["refreshes"] >= expiry["expirations"]
    assert expiry["refresh_latency_us"]["count"] >= expiry["refreshes"]
    assert expiry["refused_valid"] == 0
    assert summary["outcomes"]["refused_valid"] == 0
    assert summary["outcomes"]["rejected_as_expected"] == expiry["expirations"]
    assert summary["telemetry"]["lost"] == 0
    assert summary["verdict"]["passed"]


@pytest.mark.slow
def test_rejection_refuses_every_corpus_case(tmp_path: Path) -> None:
    summary = _run(tmp_path, scenarios={"rejection": 1}, bad_ratio=0.7, endpoint="config")
    outcomes = summary["outcomes"]
    assert outcomes["rejected_as_expected"] > 20
    assert outcomes["ok"] > 0  # the valid share
    assert outcomes["accepted_invalid"] == 0 and outcomes["refused_valid"] == 0
    corpus = summary["corpus"]
    assert corpus is not None
    assert len(corpus) >= 10
    assert all(set(counts) == {"refused"} for counts in corpus.values()), corpus
    assert summary["verdict"]["passed"]


@pytest.mark.slow
def test_one_and_two_workers_account_exactly(tmp_path: Path) -> None:
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        summary = _run(folder, scenarios={"verification": 1}, workers=workers, devices=10)
        assert summary["run"]["locust_workers"] == (workers if workers > 1 else 0)
        # Our merged account and Locust's own merged stats count the same requests exactly.
        assert summary["totals"]["requests"] == _locust_requests(folder / "results")
        assert summary["totals"]["devices"] == 10  # each device claimed by exactly one user
        assert summary["telemetry"]["lost"] == 0
        assert summary["telemetry"]["unacknowledged"] <= 10
        assert summary["outcomes"]["ok"] == summary["totals"]["requests"]
        # every request counted as it started: answered, or still waiting at stop (one per device)
        totals = summary["totals"]
        assert totals["started"] == totals["requests"] + totals["in_flight_at_stop"]
        assert 0 <= totals["in_flight_at_stop"] <= 10


@pytest.mark.slow
def test_local_workers_need_no_fixed_port(tmp_path: Path) -> None:
    """Regression: ``--workers 2`` ran Locust's master on every interface's port 5557, so a
    second run on the host (or anything else on 5557) stopped it. It binds loopback, any port."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # already taken by something else: just as good
            taken.bind(("0.0.0.0", 5557))  # the port and interfaces Locust defaults to
            taken.listen()
        summary = _run(tmp_path, scenarios={"verification": 1}, workers=2, devices=4)
    assert summary["run"]["locust_workers"] == 2
    assert summary["totals"]["devices"] == 4
    assert summary["outcomes"]["ok"] == summary["totals"]["requests"] > 0


def test_locust_files_count_what_the_summary_counts(real_mixed_summary: Summary) -> None:
    """Regression: Locust's CSV was last written up to a second before the end (120 in
    summary.json, 100 in the CSV), and MINT pseudo-requests inflated Locust's totals. On the
    session's real mixed run (10 ES256 devices, HS256 tokens, all four scenarios)."""
    summary = real_mixed_summary
    folder = Path(summary["run"]["results"])
    assert summary["mint_us"]["ES256"]["count"] > 0  # devices minted assertions
    entries = json.loads((folder / "locust_stats.json").read_text())
    assert all(e["method"] != "MINT" for e in entries)
    with open(folder / "locust_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    (aggregated,) = [row for row in rows if row["Name"] == "Aggregated"]
    assert int(aggregated["Request Count"]) == summary["totals"]["requests"]
    assert sum(e["num_requests"] for e in entries) == summary["totals"]["requests"]
    not_ok = sum(
        n
        for o, n in outcome_counts(summary["outcomes"]).items()
        if o not in ("ok", "rejected_as_expected")
    )
    assert int(aggregated["Failure Count"]) == not_ok
    assert all(row["Type"] != "MINT" for row in rows)
    # Regression: keyed by raw Prometheus label text ('{alg=HS256,grant=jwt_bearer}').
    issued = summary["server"]["tokens_issued"]
    assert set(issued) == {"client_credentials", "jwt_bearer"}, issued


def test_leeway_is_taken_with_an_external_target(start_target: StartTarget, tmp_path: Path) -> None:
    """Regression: an external target's leeway was fixed at 10 s and --leeway was refused with
    --target, though judging a late acceptance depends on it."""
    target = start_target("HS256", leeway=3)
    summary = _run(tmp_path, target=target.url, admin_key=target.admin_key, leeway=3, alg="secret")
    assert summary["run"]["parameters"]["leeway"] == 3
    assert summary["verdict"]["passed"]
    assert RunConfig(target=target.url).effective_leeway == 10  # the default, stated


def test_the_engines_refuse_a_target_without_an_admin_key() -> None:
    """The rule lives in the engines' configs (the CLI only parses), so a library caller gets it
    too, before anything starts."""
    from sim.smoke import SmokeConfig

    with pytest.raises(ConfigError, match="--target needs --admin-key"):
        RunConfig(target="http://127.0.0.1:9").check()
    with pytest.raises(ConfigError, match="--target needs --admin-key"):
        SmokeConfig(target="http://127.0.0.1:9").check()
    RunConfig(target="http://127.0.0.1:9", admin_key="k").check()
