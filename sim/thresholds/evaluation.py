"""Evaluating thresholds against a run's ``summary.json``: one check per threshold."""

from __future__ import annotations

import fnmatch
from typing import Any

from sim.outcomes import Outcome
from sim.thresholds.model import (
    ERROR_OUTCOMES,
    LATENCY_METRICS,
    LOAD_METRICS,
    TOKEN_ROWS,
    Check,
    Measured,
    Metric,
    Thresholds,
)


def _errors(outcomes: dict[str, int]) -> int:
    return sum(outcomes.get(o, 0) for o in ERROR_OUTCOMES)


def _run_value(metric: Metric, summary: dict[str, Any]) -> float:
    totals, outcomes = summary["totals"], summary["outcomes"]
    if metric == "min_rps":
        return float(totals["rps"])
    if metric == "error_ratio":
        return _errors(outcomes) / totals["requests"] if totals["requests"] else 0.0
    if metric == "telemetry_lost":
        return int((summary.get("telemetry") or {}).get("lost") or 0)
    if metric in LOAD_METRICS:
        # No load section (an older summary) or no offered rate (--interval 0): nothing short.
        load = summary.get("load") or {}
        if metric == "max_shortfall":
            return float(load.get("shortfall") or 0.0)
        return int(load.get("in_flight_at_stop") or 0)
    return int(outcomes.get(metric, 0))


def _row_value(
    metric: Metric, row: dict[str, Any], outcome: Outcome | None, corrected: bool = False
) -> float | None:
    """The metric on one row, or None when the row has nothing to measure it on."""
    count = row["count"]
    if metric in LATENCY_METRICS:
        latency = row["latency_by_outcome_us"].get(outcome, {}) if outcome else row["latency_us"]
        if corrected and not outcome and "corrected_latency_us" in row:
            latency = row["corrected_latency_us"]  # the open model's (a small extension)
        value = latency.get(metric.removesuffix("_us"))  # absent: no requests, or an old summary
        return None if value is None else float(value)
    if not count:
        return None
    if metric == "min_rps":
        share = row["outcomes"].get(outcome, 0) / count if outcome else 1.0
        return round(float(row["rps"]) * share, 2)
    if metric == "error_ratio":
        return _errors(row["outcomes"]) / int(count)
    return int(row["outcomes"].get(metric, 0))


def run_alg(summary: dict[str, Any]) -> str:
    """The run's access-token algorithm: the target's own word, else what its tokens said."""
    alg = (summary["run"].get("target") or {}).get("token_alg")
    if alg:
        return str(alg)
    algs = sorted({str(r["alg"]) for r in summary["requests"] if r["alg"] != "?"})
    return ",".join(algs) or "?"


def _what_the_run_could_send(summary: dict[str, Any]) -> tuple[set[str] | None, set[str] | None]:
    """The scenarios the run asked for, and the endpoints its target profile has; None where the
    summary does not say (an older one)."""
    mix = summary.get("scenarios")
    scenarios = {"setup", *(name for name, m in mix.items() if m.get("weight"))} if mix else None
    profile = summary["run"].get("profile") or {}
    endpoints = None
    if "endpoints" in profile:
        endpoints = set(profile["endpoints"])
        if profile.get("token_endpoint"):
            endpoints.update(TOKEN_ROWS)
    return scenarios, endpoints


def evaluate(thresholds: Thresholds, summary: dict[str, Any]) -> list[Check]:
    """Every threshold that applies to this run, measured.

    A threshold does not apply when its ``alg`` patterns match none of the run's rows (it is for
    another algorithm's run), its scenarios none the run asked for, or its endpoints none the
    target profile has (a token-endpoint limit on an API whose devices mint their own tokens). One
    that applies but matches no row fails, so a typo or a scenario that sent nothing cannot pass
    unseen."""
    alg = run_alg(summary)
    rows: list[dict[str, Any]] = summary["requests"]
    scenarios, endpoints = _what_the_run_could_send(summary)
    checks = []
    for t in thresholds.thresholds:
        if t.selector is None:
            value = _run_value(t.metric, summary)
            checks.append(Check(t, alg, (Measured("run", value, t.passes(value)),)))
            continue
        selector = t.selector
        if selector.alg != ("*",) and not any(
            fnmatch.fnmatchcase(str(r["alg"]), p) for r in rows for p in selector.alg
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
