"""``summary.json`` (schema ``fleetbench.summary/1``): one run's figures, from the raw account.

Documented field by field in docs/results.md. Latencies are microseconds, from exact histograms.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Literal, cast

from hdrh.histogram import HdrHistogram

from sim.account.measure import (
    SETUP_SCENARIO,
    TIMED_EVENTS,
    Measurements,
    RowKey,
    new_histogram,
    new_second_histogram,
    percentiles,
)
from sim.account.mqtt import mqtt_section
from sim.account.offered import load_account
from sim.account.open_model import open_account
from sim.account.server_view import DeviceStats
from sim.artefacts.summary_file import (
    SUMMARY_SCHEMA,
    DistributionPoint,
    Expiry,
    ExpiryEvents,
    GeneratorCpu,
    LatencyDistribution,
    LatencyPoint,
    LatencySeries,
    Load,
    OutcomeCounts,
    Phase,
    PhaseFigures,
    Phases,
    RequestRow,
    RunFacts,
    RunSection,
    ScenarioMix,
    Server,
    StageSecond,
    StagesSection,
    Summary,
    TargetCpu,
    Telemetry,
    TimelineRow,
    TokenRetries,
    Verdict,
)
from sim.outcomes import FATAL_OUTCOMES, OUTCOMES, Outcome
from sim.shape.scenarios import Scenario
from sim.shape.schedule import is_open_model
from sim.shape.stages import Stages

__all__ = ["SUMMARY_SCHEMA", "build_summary", "received_account", "telemetry_account", "verdict"]


def _merged(hists: list[HdrHistogram]) -> HdrHistogram:
    total = new_histogram()
    for hist in hists:
        total.add(hist)
    return total


def _outcome_counts(counts: Mapping[Outcome, int]) -> OutcomeCounts:
    # Built in the order given, as the JSON always was; the keys are outcomes by their type.
    return cast(OutcomeCounts, dict(counts))


def _timeline_row(second: int, counts: Mapping[str, int]) -> TimelineRow:
    return cast(TimelineRow, {"t": second, **counts})


def _requests(measurements: Measurements, elapsed_s: float) -> list[RequestRow]:
    """One row per endpoint x scenario x algorithm, with its outcomes and latencies."""
    groups: defaultdict[tuple[str, str, str], dict[Outcome, HdrHistogram]] = defaultdict(dict)
    for (endpoint, scenario, alg, outcome), hist in measurements.latency.items():
        groups[(endpoint, scenario, alg)][outcome] = hist
    rows: list[RequestRow] = []
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
                "outcomes": _outcome_counts(
                    {o: by_outcome[o].get_total_count() for o in OUTCOMES if o in by_outcome}
                ),
                "latency_us": percentiles(total),
                "latency_by_outcome_us": {o: percentiles(h) for o, h in sorted(by_outcome.items())},
            }
        )
        corrected = [
            measurements.corrected[RowKey(endpoint, scenario, alg, o)]
            for o in by_outcome
            if RowKey(endpoint, scenario, alg, o) in measurements.corrected
        ]
        if corrected:  # the open model's paced requests (closed runs: no such key)
            rows[-1]["corrected_latency_us"] = percentiles(_merged(corrected))
    return rows


def telemetry_account(
    measurements: Measurements,
    before: DeviceStats | None,
    after: DeviceStats | None,
) -> Telemetry:
    """Readings the fleet sent and saw acknowledged, against what the target says it received.

    ``lost``: acknowledged (202) readings the target does not hold. ``unacknowledged``: readings
    the target holds whose 202 never reached the device (cut off at the end of the run).
    """
    sent = sum(s for s, _ in measurements.telemetry.values())
    acknowledged = sum(a for _, a in measurements.telemetry.values())
    account: Telemetry = {
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
    account["received"] = received
    account["distinct"] = distinct
    account["lost"] = lost
    account["duplicated"] = duplicated
    account["unacknowledged"] = unacknowledged
    return account


def received_account(
    measurements: Measurements, before: int | None, after: int | None
) -> Telemetry:
    """Readings sent and acknowledged against a foreign API's own received count (its
    ``[stats]`` call, before and after): ``lost``: acknowledged readings beyond what it
    counts; ``unacknowledged``: counted readings whose 202 never came (in flight at stop);
    ``duplicated``: counted beyond all that was sent."""
    account = telemetry_account(measurements, None, None)
    if before is None or after is None:
        return account
    sent, acknowledged = account["sent"], account["acknowledged"]
    received = after - before
    account["available"] = True
    account["received"] = received
    account["lost"] = max(0, acknowledged - received)
    account["unacknowledged"] = max(0, min(received, sent) - acknowledged)
    account["duplicated"] = max(0, received - sent)
    return account


def _expiry(measurements: Measurements) -> Expiry | None:
    expiry_rows = [k for k in measurements.latency if k.scenario == "expiry"]
    if not expiry_rows:
        return None
    refresh = _merged(
        [
            h
            for k, h in measurements.latency.items()
            if k.endpoint.startswith("token ") and k.scenario == "expiry"
        ]
    )
    refused_valid = sum(
        h.get_total_count()
        for k, h in measurements.latency.items()
        if k.scenario == "expiry" and k.outcome == "refused_valid"
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


PHASES: tuple[Phase, ...] = ("measured", "setup")
TICKS_PER_HALF_DISTANCE = 5  # HdrHistogram's own percentile distribution output uses 5


def _phase(scenario: str) -> Phase:
    return "setup" if scenario == SETUP_SCENARIO else "measured"


def _latency_timeline(measurements: Measurements) -> list[LatencySeries]:
    """Per endpoint and phase, per second: count, p50, p90, p99 and max latency (µs, 1%)."""
    groups: defaultdict[tuple[str, Phase], defaultdict[int, list[HdrHistogram]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for (endpoint, scenario), seconds in measurements.latency_seconds.items():
        for second, hist in seconds.items():
            groups[(endpoint, _phase(scenario))][second].append(hist)
    series: list[LatencySeries] = []
    for (endpoint, phase), seconds in sorted(groups.items()):
        points: list[LatencyPoint] = []
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


def _distribution(hist: HdrHistogram) -> list[DistributionPoint]:
    """The percentile distribution as HdrHistogram prints it: ticks halving the distance to 100%."""
    count = hist.get_total_count()
    points: list[DistributionPoint] = []
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


def _latency_distribution(
    measurements: Measurements, corrected: bool = False
) -> list[LatencyDistribution]:
    """Per endpoint and phase, the exact latency distribution (all outcomes, scenarios, algs);
    ``corrected``: of the open model's corrected latency."""
    groups: defaultdict[tuple[str, Phase], list[HdrHistogram]] = defaultdict(list)
    source = measurements.corrected if corrected else measurements.latency
    for key, hist in source.items():
        groups[(key.endpoint, _phase(key.scenario))].append(hist)
    rows: list[LatencyDistribution] = []
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


def _phases(measurements: Measurements, elapsed_s: float) -> Phases:
    """Setup (first tokens) and the measured run, apart: requests, outcomes, seconds spanned."""
    outcomes: dict[Phase, Counter[Outcome]] = {phase: Counter() for phase in PHASES}
    for key, hist in measurements.latency.items():
        outcomes[_phase(key.scenario)][key.outcome] += hist.get_total_count()
    setup_seconds = sorted(measurements.setup_timeline)
    measured_seconds = sorted(
        second
        for second, counts in measurements.timeline.items()
        if sum(counts.values()) > sum(measurements.setup_timeline.get(second, Counter()).values())
    )

    def figures(phase: Phase, seconds: list[int]) -> PhaseFigures:
        return {
            "requests": sum(outcomes[phase].values()),
            "outcomes": _outcome_counts(
                {o: outcomes[phase][o] for o in OUTCOMES if outcomes[phase][o]}
            ),
            "first_t": seconds[0] if seconds else None,
            "last_t": seconds[-1] if seconds else None,
        }

    result: Phases = {
        "measured": figures("measured", measured_seconds),
        "setup": figures("setup", setup_seconds),
    }
    measured = result["measured"]["requests"]
    result["measured"]["rps"] = round(measured / elapsed_s, 2) if elapsed_s > 0 else 0.0
    return result


def _events_timeline(measurements: Measurements) -> list[ExpiryEvents]:
    names = sorted(set(TIMED_EVENTS.values()))
    return [
        cast(ExpiryEvents, {"t": second, **{name: counts.get(name, 0) for name in names}})
        for second, counts in sorted(measurements.events.items())
    ]


def _scenario_mix(
    measurements: Measurements, weights: dict[Scenario, int]
) -> dict[Scenario, ScenarioMix]:
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


def _token_retries(measurements: Measurements) -> TokenRetries:
    sets = measurements.device_sets
    return {
        "retries": measurements.counters.get("token_retries", 0),
        "backoff_s": round(measurements.counters.get("token_backoff_ms", 0) / 1000, 3),
        "devices_failed": len(sets["token_failed"]),
        "devices_recovered": len(sets["token_recovered"]),
    }


def _corpus(measurements: Measurements) -> dict[str, dict[str, int]] | None:
    if not measurements.corpus:
        return None
    return {
        case: dict(sorted(counts.items())) for case, counts in sorted(measurements.corpus.items())
    }


def _stages_asked(
    measurements: Measurements,
    stages: Stages | None,
    started: float | None,
    stopped: float | None,
    interval_s: float,
) -> float | None:
    """What the stages asked for between the devices' mean end of setup and the stop: requests
    (rate steps), or device-seconds over the interval (device steps); None without stages."""
    devices = measurements.counters.get("devices_started", 0)
    if stages is None or not started or not stopped or not devices:
        return None
    if stages.kind == "devices" and interval_s <= 0:
        return None
    setup_sum = measurements.device_start_sum_s + measurements.device_setup_sum_s
    ready_s = max(0.0, setup_sum / devices - started)
    amount = stages.cumulative(stopped - started) - stages.cumulative(ready_s)
    return amount if stages.kind == "rate" else amount / interval_s


def _stages_section(stages: Stages, started: float, stopped: float) -> StagesSection:
    """Each step's span in Unix time, and per second of the run the step and the load asked."""
    spans = stages.spans()
    timeline: list[StageSecond] = []
    for second in range(int(started), int(stopped) + 1):
        at = second + 0.5 - started
        index = next((i for i, span in enumerate(spans) if at < span[1]), len(spans) - 1)
        timeline.append({"t": second, "stage": index, "asked": round(stages.value_at(at), 2)})
    return {
        "kind": stages.kind,
        "text": stages.text,
        "steps": [
            {
                "start_t": round(started + start, 3),
                "end_t": round(started + end, 3),
                "duration_s": end - start,
                "start": before,
                "end": after,
            }
            for start, end, before, after in spans
        ],
        "timeline": timeline,
    }


def _protected_all_failed(measurements: Measurements) -> bool:
    """True when the measured phase sent requests with a held token to the profile's endpoints
    (not token calls, not the rejection scenario's bad tokens) and not one of them was ok: a
    run whose setup tokens alone succeeded measured nothing that works."""
    protected = [
        (key.outcome, hist.get_total_count())
        for key, hist in measurements.latency.items()
        if _phase(key.scenario) == "measured"
        and key.scenario != "rejection"
        and not key.endpoint.startswith("token ")
    ]
    return any(count for _, count in protected) and not any(
        count for outcome, count in protected if outcome == "ok"
    )


def verdict(failures: list[str], load: Load) -> Verdict:
    """PASS, PASS (overloaded) or FAIL. Overload alone never fails a run (thresholds can)."""
    passed = not failures
    overloaded = bool(load.get("overloaded"))
    label: Literal["PASS", "PASS (overloaded)", "FAIL"] = (
        "FAIL" if not passed else "PASS (overloaded)" if overloaded else "PASS"
    )
    return {"passed": passed, "overloaded": overloaded, "label": label, "failures": failures}


def build_summary(
    measurements: Measurements,
    *,
    run: RunFacts,
    started: float | None,
    stopped: float | None,
    server: Server,
    telemetry: Telemetry,
    generator: GeneratorCpu,
    interrupted: bool,
    interval_s: float = 1.0,
    target_cpu: TargetCpu | None = None,
    weights: dict[Scenario, int] | None = None,
    rate_rps: float | None = None,
    stages: Stages | None = None,
) -> Summary:
    elapsed_s = (stopped - started) if started and stopped else 0.0
    outcomes: Counter[Outcome] = Counter({o: 0 for o in OUTCOMES})
    for key, hist in measurements.latency.items():
        outcomes[key.outcome] += hist.get_total_count()
    total = sum(outcomes.values())
    failures = []
    for outcome in sorted(FATAL_OUTCOMES):
        if outcomes[outcome]:
            failures.append(f"{outcomes[outcome]} {outcome}: a bad token was accepted")
    if outcomes["ok"] == 0:
        failures.append("no request succeeded")
    elif _protected_all_failed(measurements):
        failures.append("no request to the measured endpoints succeeded (only token calls did)")
    if telemetry.get("lost"):
        failures.append(f"{telemetry['lost']} acknowledged telemetry readings lost")
    if interrupted:
        failures.append("interrupted before the end")
    if errors := measurements.counters.get("device_errors", 0):
        failures.append(f"{errors} errors in fleetbench's own device code (see locust.log)")
    target_cpu = target_cpu or {"available": False}
    asked = _stages_asked(measurements, stages, started, stopped, interval_s)
    load = load_account(
        measurements,
        interval_s=interval_s,
        stopped=stopped,
        generator=generator,
        target_cpu=target_cpu,
        answered=total,
        asked_requests=asked,
    )
    open_model = None
    if is_open_model(rate_rps, stages):
        if rate_rps is None:
            # Rate stages are the open model at a changing rate: its account at their mean.
            rate_rps = load.get("offered_rps") or 0.0
            interval_s = run["fleet"]["devices"] / rate_rps if rate_rps else 0.0
        open_model = open_account(measurements, load, rate_rps=rate_rps, interval_s=interval_s)
    timeline = [
        _timeline_row(second, counts) for second, counts in sorted(measurements.timeline.items())
    ]
    summary: Summary = {
        "schema": SUMMARY_SCHEMA,
        "run": cast(
            RunSection,
            {
                **run,
                "started_at": started,
                "stopped_at": stopped,
                "elapsed_s": round(elapsed_s, 3),
                "interrupted": interrupted,
                "model": "closed" if open_model is None else "open",
            },
        ),
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
        "outcomes": _outcome_counts(outcomes),
        "requests": _requests(measurements, elapsed_s),
        "refusals": [
            {
                "endpoint": key.endpoint,
                "scenario": key.scenario,
                "status": key.status,
                "reason": key.reason,
                "count": count,
            }
            # ordered as the wire's "endpoint|scenario|status|reason" text always was
            for key, count in sorted(
                measurements.reasons.items(),
                key=lambda item: (*item[0][:2], str(item[0].status), item[0].reason),
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
        # Additive keys for the HTML report (docs/results.md): setup apart from the
        # measured run, latency over time and its distribution per endpoint, expiry over time.
        "setup_timeline": [
            _timeline_row(second, counts)
            for second, counts in sorted(measurements.setup_timeline.items())
        ],
        "phases": _phases(measurements, elapsed_s),
        "latency_timeline": _latency_timeline(measurements),
        "latency_distribution": _latency_distribution(measurements),
        "expiry_timeline": _events_timeline(measurements),
    }
    mqtt = mqtt_section(measurements)
    if mqtt is not None:
        summary["mqtt"] = mqtt
    if stages is not None and started and stopped:
        summary["stages"] = _stages_section(stages, started, stopped)
    if open_model is not None:
        summary["open_model"] = open_model
        summary["corrected_latency_distribution"] = _latency_distribution(measurements, True)
    return summary
