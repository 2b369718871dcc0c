"""The HTML reports, opened in a real browser: Debian's chromium, headless, driven by Playwright.

Each report kind comes from a real short run (run, smoke, compare, attack). In the browser: no
console errors, no request leaves the file, every chart is drawn with data, every figure marked
``data-figure`` shows summary.json's value, and no Python ``True``/``False``/``None`` shows. Each
report's screenshot is kept beside it as ``report.png``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from sim.artefacts.summary_file import Summary
from sim.attack import AttackConfig, attack_json, run_attack
from sim.output.report import human, write_attack_report, write_report
from sim.screenshot import PageCheck, open_report
from tests.sim.conftest import RealCommand, golden

browser = pytest.mark.browser  # skipped without chromium (tests/conftest.py)


def _resolve(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, list) and part.isdigit():
            document = document[int(part)]
        elif isinstance(document, dict) and part in document:
            document = document[part]
        else:
            return KeyError(path)
    return document


def _open(html: Path) -> PageCheck:
    check = open_report(html, html.with_name("report.png"))
    assert check.console_errors == []
    assert [url for url in check.requests if not url.startswith("file://")] == []
    assert check.charts, "a report without a chart"
    for chart in check.charts:
        assert chart["drawn"] and chart["traces"] > 0 and chart["points"] > 0, chart
    for word in ("True", "False", "None", "nan"):
        assert f" {word} " not in f" {check.text} ".replace("\n", " "), word
    assert html.with_name("report.png").read_bytes().startswith(b"\x89PNG")
    return check


def _figures_equal(check: PageCheck, document: Mapping[str, Any], minimum: int) -> None:
    """Every figure whose path names a value in ``document`` shows exactly that value."""
    compared = 0
    for figure in check.figures:
        expected = _resolve(document, figure["figure"])
        if figure["value"] is None or isinstance(expected, KeyError | dict | list):
            continue
        assert json.loads(figure["value"]) == expected, figure
        if not isinstance(expected, bool):
            assert human(expected) in figure["text"], figure
        compared += 1
    assert compared >= minimum, check.figures


def _sums(check: PageCheck, chart_id: str) -> dict[str, float]:
    chart = next(c for c in check.charts if c["id"] == chart_id)
    return {name: total for name, total in chart["sums"]}


@browser
def test_run_report_in_a_browser(real_mixed_summary: dict[str, Any]) -> None:
    summary = real_mixed_summary
    folder = Path(summary["run"]["results"])
    check = _open(folder / "report.html")
    assert check.title.startswith("fleetbench run: PASS")
    _figures_equal(check, summary, minimum=40)
    ids = {chart["id"] for chart in check.charts}
    assert {"throughput", "distribution", "verify-vs-client", "expiry"} <= ids
    assert any(i.startswith("latency-time-") for i in ids)
    # Setup apart from the measured run: the bars add up to each phase's total.
    throughput = _sums(check, "throughput")
    phases = summary["phases"]
    setup = throughput.pop("setup: first tokens")
    assert setup == phases["setup"]["requests"] > 0
    assert sum(throughput.values()) == phases["measured"]["requests"]
    assert phases["measured"]["requests"] + setup == summary["totals"]["requests"]
    expiry = _sums(check, "expiry")
    assert expiry["expirations"] == summary["expiry"]["expirations"] > 0
    assert expiry["refreshes"] == summary["expiry"]["refreshes"]
    assert summary["run"]["cpu"]["model"] in check.text and " UTC" in check.text


@browser
def test_mqtt_run_report_in_a_browser(tmp_path: Path) -> None:
    """The MQTT sections (the golden MQTT run's): every figure shows summary.json's value."""
    summary = golden("mqtt")
    html = tmp_path / "report.html"
    write_report(summary, html)
    check = _open(html)
    assert "MQTT sessions" in check.text
    mqtt_figures = [f for f in check.figures if f["figure"].startswith("mqtt.")]
    assert len(mqtt_figures) >= 6
    _figures_equal(check, summary, 6)


@browser
def test_mqtt_storm_report_shows_the_reconnects_and_the_recovery(tmp_path: Path) -> None:
    """The expiry storm over MQTT (the golden run's): its reconnect CONNECTs, their rate and the
    time to recover are in the report, as summary.json has them."""
    summary = golden("mqtt_storm")
    storms = summary.get("storms")
    assert storms is not None and "expiry" in storms
    storm = storms["expiry"]
    connects = storm.get("connect_burst")
    assert connects is not None
    assert connects["requests"] > 0 and storm["time_to_recover_s"] is not None
    html = tmp_path / "report.html"
    write_report(summary, html)
    check = _open(html)
    shown = {f["figure"] for f in check.figures}
    assert {
        "storms.expiry.connect_burst.requests",
        "storms.expiry.connect_burst.peak_rps",
        "storms.expiry.time_to_recover_s",
    } <= shown
    _figures_equal(check, summary, 10)
    assert connects["first_t"] is not None and connects["last_t"] is not None
    rate = connects["requests"] / (connects["last_t"] - connects["first_t"] + 1)
    assert "connects/s" in check.text and human(rate) in check.text


def test_summary_keys_for_the_report(real_mixed_summary: dict[str, Any]) -> None:
    """The additive summary.json keys agree with the existing ones."""
    summary = real_mixed_summary
    phases = summary["phases"]
    setup_rows = [r for r in summary["requests"] if r["scenario"] == "setup"]
    assert phases["setup"]["requests"] == sum(r["count"] for r in setup_rows) > 0
    assert (
        sum(sum(v for k, v in row.items() if k != "t") for row in summary["setup_timeline"])
        == (phases["setup"]["requests"])
    )
    for outcome, count in summary["outcomes"].items():
        split = phases["measured"]["outcomes"].get(outcome, 0)
        assert split + phases["setup"]["outcomes"].get(outcome, 0) == count
    # Latency over time: every measured request is in exactly one second of its endpoint.
    by_endpoint: dict[str, int] = {}
    for row in summary["requests"]:
        if row["scenario"] != "setup":
            by_endpoint[row["endpoint"]] = by_endpoint.get(row["endpoint"], 0) + row["count"]
    over_time = {
        s["endpoint"]: sum(p["count"] for p in s["points"])
        for s in summary["latency_timeline"]
        if s["phase"] == "measured"
    }
    assert over_time == by_endpoint
    for series in summary["latency_timeline"]:
        for point in series["points"]:
            assert point["p50"] <= point["p90"] <= point["p99"] <= point["max"]
    # The distribution: percentiles rising to 100 %, latency never falling, ending at the max.
    for row in summary["latency_distribution"]:
        percentiles = [p["percentile"] for p in row["points"]]
        latencies = [p["latency_us"] for p in row["points"]]
        assert percentiles == sorted(percentiles) and percentiles[-1] == 100.0
        assert latencies == sorted(latencies)
        rows = [
            r
            for r in summary["requests"]
            if r["endpoint"] == row["endpoint"]
            and (r["scenario"] == "setup") == (row["phase"] == "setup")
        ]
        assert row["count"] == sum(r["count"] for r in rows)
        assert latencies[-1] == max(r["latency_us"]["max"] for r in rows)
    events = summary["expiry_timeline"]
    assert sum(e["expirations"] for e in events) == summary["expiry"]["expirations"] > 0
    assert sum(e["refreshes"] for e in events) == summary["expiry"]["refreshes"]
    assert sum(e["recoveries"] for e in events) >= summary["expiry"]["devices_recovered"]


@browser
def test_smoke_report_and_job_summary(real_smoke: RealCommand) -> None:
    """The shared real smoke (HS256 and ES256), run with ``$GITHUB_STEP_SUMMARY`` set."""
    folder = real_smoke.results
    step_summary = folder.parent / "step_summary.md"
    record = json.loads((folder / "summary.json").read_text())
    markdown = (folder / "summary.md").read_text()
    verdict = "PASS" if record["passed"] else "FAIL"
    assert markdown.startswith(f"## fleetbench smoke: {verdict}")
    assert step_summary.read_text() == "earlier step\n" + markdown + "\n"
    for check in record["checks"]:
        assert f"| {check['alg']} | {check['threshold']} |" in markdown
    assert "Worst" in markdown
    assert not any(f"| {alg} | setup |" in markdown for alg in record["runs"])

    page = _open(folder / "report.html")
    assert page.title == f"fleetbench smoke: {verdict}"
    _figures_equal(page, record, minimum=3)
    failed = next(f for f in page.figures if f["figure"] == "checks.failed")
    assert json.loads(failed["value"]) == sum(not c["passed"] for c in record["checks"])
    for index, check in enumerate(record["checks"]):
        if check["measured"]:
            pick = max if check["bound"] == "max" else min
            worst = pick(m["value"] for m in check["measured"])
            shown = next(f for f in page.figures if f["figure"] == f"checks.{index}.worst")
            assert json.loads(shown["value"]) == worst
    for alg in record["runs"]:
        _open(folder / alg / "report.html")


@browser
def test_compare_report_in_a_browser(real_micro_compare: RealCommand) -> None:
    result = real_micro_compare.json()  # compare.json, as --json printed it
    page = _open(real_micro_compare.results / "report.html")
    _figures_equal(page, result, minimum=2)
    micro = _sums(page, "micro")
    assert micro["target verifier"] == pytest.approx(
        sum(entry["verify_us"] for entry in result["algorithms"].values())
    )
    assert "cores for 10,000 tokens/s" in page.text


@browser
def test_attack_report_in_a_browser(tmp_path: Path) -> None:
    body = attack_json(run_attack(AttackConfig(algs=("HS256",))), strict=False)
    write_attack_report(body, tmp_path / "report.html")
    page = _open(tmp_path / "report.html")
    _figures_equal(page, body, minimum=5)
    bars = _sums(page, "families-0")
    assert sum(bars.values()) == body["runs"][0]["counts"]["cases"]
    assert bars.get("refused") == body["runs"][0]["counts"]["refused"]


def test_load_section_and_overloaded_verdict_show_at_the_top(
    mixed_summary: Summary, tmp_path: Path
) -> None:
    """``load`` (offered against delivered) is rendered in its own plain words, and an overloaded
    run's verdict reads ``PASS (overloaded)``, not a bare ``PASS``."""
    from sim.output.report import write_report

    write_report(mixed_summary, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert str(markupsafe.escape(mixed_summary["load"]["line"])) in page

    overloaded: Summary = {
        **mixed_summary,
        "verdict": {**mixed_summary["verdict"], "overloaded": True, "label": "PASS (overloaded)"},
        "load": {**mixed_summary["load"], "saturated": "target", "notes": ["the target is slow"]},
    }
    write_report(overloaded, tmp_path / "overloaded.html")
    page = (tmp_path / "overloaded.html").read_text()
    assert '<span class="word">PASS (overloaded)</span>' in page
    assert "the limit: target" in page
    assert "the target is slow" in page
