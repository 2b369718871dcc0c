"""``summary.json`` (schema ``fleetbench.summary/1``): one run's figures, from the raw account.

Documented field by field in the README. Latencies are microseconds, from exact histograms.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hdrh.histogram import HdrHistogram

from sim.load import load_account
from sim.measure import (
    SEP,
    SETUP_SCENARIO,
    TIMED_EVENTS,
    Measurements,
    new_histogram,
    new_second_histogram,
    percentiles,
)
from sim.outcomes import FATAL_OUTCOMES, OUTCOMES

__all__ = ["SUMMARY_SCHEMA", "build_summary", "telemetry_account", "verdict"]

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


PHASES = ("measured", "setup")
TICKS_PER_HALF_DISTANCE = 5  # HdrHistogram's own percentile distribution output uses 5


def _phase(scenario: str) -> str:
    return "setup" if scenario == SETUP_SCENARIO else "measured"


def _latency_timeline(measurements: Measurements) -> list[dict[str, Any]]:
    """Per endpoint and phase, per second: count, p50, p90, p99 and max latency (µs, 1%)."""
    groups: defaultdict[tuple[str, str], defaultdict[int, list[HdrHistogram]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for key, seconds in measurements.latency_seconds.items():
        endpoint, scenario = key.split(SEP)
        for second, hist in seconds.items():
            groups[(endpoint, _phase(scenario))][second].append(hist)
    series = []
    for (endpoint, phase), seconds in sorted(groups.items()):
        points = []
        for second, hists in sorted(seconds.items()):
            total = new_second_histogram()
            for hist in hists:
                total.add(hist)
            points.append(
                {
                    "t": second,
                    "count": total.get_total_count(),
                    "p50": total.get_value_at_percentile(50.0),
                    "p90": total.get_value_at_percentile(90.0),
                    "p99": total.get_value_at_percentile(99.0),
                    "max": total.get_max_value(),
                }
            )
        series.append({"endpoint": endpoint, "phase": phase, "points": points})
    return series


def _distribution(hist: HdrHistogram) -> list[dict[str, float]]:
    """The percentile distribution as HdrHistogram prints it: ticks halving the distance to 100%."""
    count = hist.get_total_count()
    points = []
    tick = 0
    while True:
        percentile = 100.0 * (1.0 - 0.5 ** (tick / TICKS_PER_HALF_DISTANCE))
        if count * (1.0 - percentile / 100.0) < 1.0:
            break
        points.append(
            {
                "percentile": round(percentile, 6),
                "latency_us": hist.get_value_at_percentile(percentile),
            }
        )
        tick += 1
    points.append({"percentile": 100.0, "latency_us": hist.get_max_value()})
    return points


def _latency_distribution(measurements: Measurements) -> list[dict[str, Any]]:
    """Per endpoint and phase, the exact latency distribution (all outcomes, scenarios, algs)."""
    groups: defaultdict[tuple[str, str], list[HdrHistogram]] = defaultdict(list)
    for key, hist in measurements.latency.items():
        endpoint, scenario, _, _ = key.split(SEP)
        groups[(endpoint, _phase(scenario))].append(hist)
    rows = []
    for (endpoint, phase), hists in sorted(groups.items()):
        total = _merged(hists)
        if total.get_total_count():
            rows.append(
                {
                    "endpoint": endpoint,
                    "phase": phase,
                    "count": total.get_total_count(),
                    "points": _distribution(total),
                }
            )
    return rows


def _phases(measurements: Measurements, elapsed_s: float) -> dict[str, Any]:
    """Setup (first tokens) and the measured run, apart: requests, outcomes, seconds spanned."""
    outcomes: dict[str, Counter[str]] = {phase: Counter() for phase in PHASES}
    for key, hist in measurements.latency.items():
        _, scenario, _, outcome = key.split(SEP)
        outcomes[_phase(scenario)][outcome] += hist.get_total_count()
    setup_seconds = sorted(measurements.setup_timeline)
    measured_seconds = sorted(
        second
        for second, counts in measurements.timeline.items()
        if sum(counts.values()) > sum(measurements.setup_timeline.get(second, Counter()).values())
    )
    result: dict[str, Any] = {}
    for phase, seconds in (("measured", measured_seconds), ("setup", setup_seconds)):
        requests = sum(outcomes[phase].values())
        result[phase] = {
            "requests": requests,
            "outcomes": {o: outcomes[phase][o] for o in OUTCOMES if outcomes[phase][o]},
            "first_t": seconds[0] if seconds else None,
            "last_t": seconds[-1] if seconds else None,
        }
    measured = result["measured"]["requests"]
    result["measured"]["rps"] = round(measured / elapsed_s, 2) if elapsed_s > 0 else 0.0
    return result


def _events_timeline(measurements: Measurements) -> list[dict[str, Any]]:
    names = sorted(set(TIMED_EVENTS.values()))
    return [
        {"t": second, **{name: counts.get(name, 0) for name in names}}
        for second, counts in sorted(measurements.events.items())
    ]


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


def verdict(failures: list[str], load: dict[str, Any]) -> dict[str, Any]:
    """PASS, PASS (overloaded) or FAIL. Overload alone never fails a run (thresholds can)."""
    passed = not failures
    overloaded = bool(load.get("overloaded"))
    label = "FAIL" if not passed else "PASS (overloaded)" if overloaded else "PASS"
    return {"passed": passed, "overloaded": overloaded, "label": label, "failures": failures}


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
    interval_s: float = 1.0,
    target_cpu: dict[str, Any] | None = None,
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
    target_cpu = target_cpu or {"available": False}
    load = load_account(
        measurements,
        interval_s=interval_s,
        stopped=stopped,
        generator=generator,
        target_cpu=target_cpu,
        answered=total,
    )
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
        "verdict": verdict(failures, load),
        "totals": {
            "requests": total,
            # started = requests (the outcome account) + in flight at stop, always
            "started": measurements.started,
            "in_flight_at_stop": load["in_flight_at_stop"],
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
        "target_cpu": target_cpu,
        "load": load,
        "timeline": timeline,
        # Additive keys for the HTML report (README, "summary.json"): setup apart from the
        # measured run, latency over time and its distribution per endpoint, expiry over time.
        "setup_timeline": [
            {"t": second, **dict(counts)}
            for second, counts in sorted(measurements.setup_timeline.items())
        ],
        "phases": _phases(measurements, elapsed_s),
        "latency_timeline": _latency_timeline(measurements),
        "latency_distribution": _latency_distribution(measurements),
        "expiry_timeline": _events_timeline(measurements),
    }
