"""``summary.json`` (schema ``fleetbench.summary/1``): one run's figures, from the raw account.

Documented field by field in the README. Latencies are microseconds, from exact histograms.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hdrh.histogram import HdrHistogram

from sim.measure import SEP, Measurements, new_histogram, percentiles
from sim.outcomes import FATAL_OUTCOMES, OUTCOMES

__all__ = ["SUMMARY_SCHEMA", "build_summary", "telemetry_account"]

SUMMARY_SCHEMA = "fleetbench.summary/1"


def _merged(hists: list[HdrHistogram]) -> HdrHistogram:
    total = new_histogram()
    for hist in hists:
        total.add(hist)
    return total


def _requests(measurements: Measurements, elapsed_s: float) -> list[dict[str, Any]]:
    """One row per endpoint x scenario x algorithm, with its outcomes and latencies."""
    groups: defaultdict[tuple[str, str, str], dict[str, HdrHistogram]] = defaultdict(dict)
    for key, hist in measurements.latency.items():
        endpoint, scenario, alg, outcome = key.split(SEP)
        groups[(endpoint, scenario, alg)][outcome] = hist
    rows = []
    for (endpoint, scenario, alg), by_outcome in sorted(groups.items()):
        total = _merged(list(by_outcome.values()))
        count = total.get_total_count()
        rows.append(
            {
                "endpoint": endpoint,
                "scenario": scenario,
                "alg": alg,
                "count": count,
                "rps": round(count / elapsed_s, 2) if elapsed_s > 0 else 0.0,
                "outcomes": {
                    o: by_outcome[o].get_total_count() for o in OUTCOMES if o in by_outcome
                },
                "latency_us": percentiles(total),
                "latency_by_outcome_us": {o: percentiles(h) for o, h in sorted(by_outcome.items())},
            }
        )
    return rows


def telemetry_account(
    measurements: Measurements,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    """Readings the fleet sent and saw acknowledged, against what the target says it received.

    ``lost``: acknowledged (202) readings the target does not hold. ``unacknowledged``: readings
    the target holds whose 202 never reached the device (cut off at the end of the run).
    """
    sent = sum(s for s, _ in measurements.telemetry.values())
    acknowledged = sum(a for _, a in measurements.telemetry.values())
    account: dict[str, Any] = {
        "available": after is not None,
        "devices": sum(1 for s, _ in measurements.telemetry.values() if s),
        "sent": sent,
        "acknowledged": acknowledged,
    }
    if after is None:
        return account
    before = before or {}
    received = distinct = duplicated = lost = unacknowledged = 0
    for device, (_, acked) in measurements.telemetry.items():
        now, then = after.get(device, {}), before.get(device, {})
        got = now.get("received", 0) - then.get("received", 0)
        new = now.get("distinct", 0) - then.get("distinct", 0)
        received += got
        distinct += new
        duplicated += now.get("duplicates", 0) - then.get("duplicates", 0)
        lost += max(0, acked - new)
        unacknowledged += max(0, new - acked)
    account.update(
        received=received,
        distinct=distinct,
        lost=lost,
        duplicated=duplicated,
        unacknowledged=unacknowledged,
    )
    return account


def _expiry(measurements: Measurements) -> dict[str, Any] | None:
    expiry_rows = [k for k in measurements.latency if k.split(SEP)[1] == "expiry"]
    if not expiry_rows:
        return None
    refresh = _merged(
        [h for k, h in measurements.latency.items() if k.startswith("token ") and "|expiry|" in k]
    )
    refused_valid = sum(
        h.get_total_count()
        for k, h in measurements.latency.items()
        if "|expiry|" in k and k.endswith("|refused_valid")
    )
    sets = measurements.device_sets
    return {
        "expirations": measurements.counters.get("expirations", 0),
        "refreshes": measurements.counters.get("refreshes", 0),
        "devices": len(sets["expiry"]),
        "devices_expired": len(sets["expired"]),
        "devices_recovered": len(sets["recovered"]),
        "refused_valid": refused_valid,
        "refresh_latency_us": percentiles(refresh),
    }


def _scenario_mix(measurements: Measurements, weights: dict[str, int]) -> dict[str, Any]:
    """Per scenario: its weight and share of the weights, and how often devices ran it."""
    runs = {name: measurements.counters.get(f"runs {name}", 0) for name in weights}
    total_runs, total_weight = sum(runs.values()), sum(weights.values())
    return {
        name: {
            "weight": weight,
            "expected_share": round(weight / total_weight, 4) if total_weight else 0.0,
            "runs": runs[name],
            "share": round(runs[name] / total_runs, 4) if total_runs else 0.0,
        }
        for name, weight in weights.items()
    }


def _token_retries(measurements: Measurements) -> dict[str, Any]:
    sets = measurements.device_sets
    return {
        "retries": measurements.counters.get("token_retries", 0),
        "backoff_s": round(measurements.counters.get("token_backoff_ms", 0) / 1000, 3),
        "devices_failed": len(sets["token_failed"]),
        "devices_recovered": len(sets["token_recovered"]),
    }


def _corpus(measurements: Measurements) -> dict[str, Any] | None:
    if not measurements.corpus:
        return None
    return {
        case: dict(sorted(counts.items())) for case, counts in sorted(measurements.corpus.items())
    }


def build_summary(
    measurements: Measurements,
    *,
    run: dict[str, Any],
    started: float | None,
    stopped: float | None,
    server: dict[str, Any],
    telemetry: dict[str, Any],
    generator: dict[str, Any],
    interrupted: bool,
    weights: dict[str, int] | None = None,
) -> dict[str, Any]:
    elapsed_s = (stopped - started) if started and stopped else 0.0
    outcomes: Counter[str] = Counter({o: 0 for o in OUTCOMES})
    for key, hist in measurements.latency.items():
        outcomes[key.rsplit(SEP, 1)[1]] += hist.get_total_count()
    total = sum(outcomes.values())
    failures = []
    for outcome in sorted(FATAL_OUTCOMES):
        if outcomes[outcome]:
            failures.append(f"{outcomes[outcome]} {outcome}: a bad token was accepted")
    if outcomes["ok"] == 0:
        failures.append("no request succeeded")
    if telemetry.get("lost"):
        failures.append(f"{telemetry['lost']} acknowledged telemetry readings lost")
    if interrupted:
        failures.append("interrupted before the end")
    timeline = [
        {"t": second, **dict(counts)} for second, counts in sorted(measurements.timeline.items())
    ]
    return {
        "schema": SUMMARY_SCHEMA,
        "run": {
            **run,
            "started_at": started,
            "stopped_at": stopped,
            "elapsed_s": round(elapsed_s, 3),
            "interrupted": interrupted,
        },
        "verdict": {"passed": not failures, "failures": failures},
        "totals": {
            "requests": total,
            "rps": round(total / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "devices": measurements.counters.get("devices_started", 0),
            "users_without_device": measurements.counters.get("users_without_device", 0),
        },
        "outcomes": dict(outcomes),
        "requests": _requests(measurements, elapsed_s),
        "refusals": [
            {
                "endpoint": endpoint,
                "scenario": scenario,
                "status": int(status),
                "reason": reason,
                "count": count,
            }
            for (endpoint, scenario, status, reason), count in sorted(
                (tuple(k.split(SEP)), v) for k, v in measurements.reasons.items()
            )
        ],
        "mint_us": {alg: percentiles(h) for alg, h in sorted(measurements.mint.items())},
        "scenarios": _scenario_mix(measurements, weights or {}),
        "token_retries": _token_retries(measurements),
        "expiry": _expiry(measurements),
        "corpus": _corpus(measurements),
        "telemetry": telemetry,
        "server": server,
        "generator": generator,
        "timeline": timeline,
    }
