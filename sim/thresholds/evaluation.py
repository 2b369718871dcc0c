"""Evaluating thresholds against a run's ``summary.json``: one check per threshold."""

from __future__ import annotations

import fnmatch
from typing import Literal

from sim.artefacts.summary_file import OutcomeCounts, RequestRow, Summary
from sim.outcomes import OUTCOMES, Outcome
from sim.thresholds.model import (
    ERROR_OUTCOMES,
    TOKEN_ROWS,
    Check,
    Measured,
    Metric,
    Thresholds,
)

# Each latency metric (LATENCY_METRICS) and the figure of a row's ``latency_us`` it reads.
_PERCENTILES: dict[str, Literal["p50", "p95", "p99", "max"]] = {
    "p50_us": "p50",
    "p95_us": "p95",
    "p99_us": "p99",
    "max_us": "max",
}
# The count metrics that are outcomes, by name (``telemetry_lost`` is not one).
_OUTCOME_METRICS: dict[str, Outcome] = {o: o for o in OUTCOMES}


def _errors(outcomes: OutcomeCounts) -> int:
    return sum(outcomes.get(o, 0) for o in ERROR_OUTCOMES)


def _count(outcomes: OutcomeCounts, metric: Metric) -> int:
    """An outcome's count; 0 for a metric that is no outcome (it is never counted)."""
    outcome = _OUTCOME_METRICS.get(metric)
    return outcomes.get(outcome, 0) if outcome else 0


def _run_value(metric: Metric, summary: Summary) -> float:
    totals, outcomes = summary["totals"], summary["outcomes"]
    if metric == "min_rps":
        return float(totals["rps"])
    if metric == "error_ratio":
        return _errors(outcomes) / totals["requests"] if totals["requests"] else 0.0
    if metric == "telemetry_lost":
        return summary["telemetry"].get("lost") or 0
    if metric == "max_shortfall":
        # No offered rate (--interval 0): nothing short.
        return float(summary["load"]["shortfall"] or 0.0)
    if metric == "max_in_flight":
        return summary["load"]["in_flight_at_stop"]
    return _count(outcomes, metric)


def _row_value(
    metric: Metric, row: RequestRow, outcome: Outcome | None, corrected: bool = False
) -> float | None:
    """The metric on one row, or None when the row has nothing to measure it on."""
    count = row["count"]
    percentile = _PERCENTILES.get(metric)
    if percentile is not None:
        latency = row["latency_by_outcome_us"].get(outcome) if outcome else row["latency_us"]
        if corrected and not outcome and "corrected_latency_us" in row:
            latency = row["corrected_latency_us"]  # the open model's (a small extension)
        if latency is None:  # no request had this outcome
            return None
        value = latency.get(percentile)  # absent: no requests, or an old summary
        return None if value is None else float(value)
    if not count:
        return None
    if metric == "min_rps":
        share = row["outcomes"].get(outcome, 0) / count if outcome else 1.0
        return round(float(row["rps"]) * share, 2)
    if metric == "error_ratio":
        return _errors(row["outcomes"]) / int(count)
    return _count(row["outcomes"], metric)


def run_alg(summary: Summary) -> str:
    """The run's access-token algorithm: the target's own word, else what its tokens said."""
    alg = summary["run"]["target"]["token_alg"]
    if alg:
        return alg
    algs = sorted({r["alg"] for r in summary["requests"] if r["alg"] != "?"})
    return ",".join(algs) or "?"


def _what_the_run_could_send(summary: Summary) -> tuple[set[str] | None, set[str] | None]:
    """The scenarios the run asked for, and the endpoints its target profile has; None where the
    summary does not say (an older one)."""
    mix = summary["scenarios"]
    scenarios = {"setup", *(name for name, m in mix.items() if m["weight"])} if mix else None
    profile = summary["run"].get("profile")
    endpoints = None
    if profile is not None and "endpoints" in profile:
        endpoints = set(profile["endpoints"])
        if profile.get("token_endpoint"):
            endpoints.update(TOKEN_ROWS)
    return scenarios, endpoints


def evaluate(thresholds: Thresholds, summary: Summary) -> list[Check]:
    """Every threshold that applies to this run, measured.

    A threshold does not apply when its ``alg`` patterns match none of the run's rows (it is for
    another algorithm's run), its scenarios none the run asked for, or its endpoints none the
    target profile has (a token-endpoint limit on an API whose devices mint their own tokens). One
    that applies but matches no row fails, so a typo or a scenario that sent nothing cannot pass
    unseen."""
    alg = run_alg(summary)
    rows = summary["requests"]
    scenarios, endpoints = _what_the_run_could_send(summary)
    checks = []
    for t in thresholds.thresholds:
        if t.selector is None:
            value = _run_value(t.metric, summary)
            checks.append(Check(t, alg, (Measured("run", value, t.passes(value)),)))
            continue
        selector = t.selector
        if selector.alg != ("*",) and not any(
            fnmatch.fnmatchcase(r["alg"], p) for r in rows for p in selector.alg
        ):
            continue
        if scenarios is not None and not any(selector.names_scenario(s) for s in scenarios):
            continue
        if endpoints is not None and not any(selector.names_endpoint(e) for e in endpoints):
            continue
        measured = []
        for row in rows:
            if not selector.matches(row):
                continue
            found = _row_value(t.metric, row, selector.outcome, selector.latency == "corrected")
            if found is not None:
                where = f"{row['scenario']} {row['endpoint']}"
                measured.append(Measured(where, found, t.passes(found)))
        note = "" if measured else f"no requests matched {selector.describe()}"
        checks.append(Check(t, alg, tuple(measured), note))
    return checks
