"""Offered against delivered: did the run put on the target the load it asked for, and if not,
which side gave out.

The fleet is a closed model: each device runs one scenario task per ``interval`` (Locust's
``constant_pacing``), and each task sends one *paced* request — the resource request (telemetry,
config, data), or for the issuance scenario the token request. So the fleet asks for
``devices / interval`` paced requests per second. Token requests a device makes to set up or to
renew a token ride on top and are not part of either figure. A device that waits longer than the
interval for its answers falls behind its schedule: that is the shortfall.

``offered`` counts each device from the end of its setup (its first token request, answered or
not; from its start if that request was still waiting at stop), so neither the ramp-up nor the
setup counts as a shortfall. It then waits a random share of one interval and sends one paced
request per interval: ``T / interval`` in ``T`` seconds on average, whatever the phase. So
``offered = sum over devices of (stop - setup end) / interval``. ``delivered`` counts the paced
requests that got an answer (any outcome but ``transport_error``); ``delivered_rps =
offered_rps * delivered / offered``, the rate the fleet got in the terms it asked in.
"""

from __future__ import annotations

from sim.account.generator import SATURATION_RULE
from sim.account.measure import KEPT_CONNECTION, Measurements
from sim.artefacts.summary_file import GeneratorCpu, Load, Saturated, TargetCpu

__all__ = ["IN_FLIGHT_SHARE", "MAX_SHORTFALL", "load_account", "load_line", "paced"]

# A run more than this share short of its offered load is overloaded.
MAX_SHORTFALL = 0.05
# Time waiting for a core worth a mention in the load line (the machine is busy).
NOTABLE_WAIT_PERCENT = 10.0
# A run with more than this share of its devices still waiting for an answer at stop is
# overloaded. By Little's law that share is the answer time over the interval: 5 % means the
# answers took more than a twentieth of the interval, far above a target that keeps up.
IN_FLIGHT_SHARE = 0.05


def paced(endpoint: str, scenario: str) -> bool:
    """Whether requests of this row are the paced one of their task (not setup or renewal)."""
    if scenario == "setup":
        return False
    return scenario == "issuance" or not endpoint.startswith("token ")


def _paced_counts(measurements: Measurements) -> tuple[int, int]:
    """(answered paced requests, paced transport errors)."""
    answered = failed = 0
    for (endpoint, scenario, _, outcome), hist in measurements.latency.items():
        if not paced(endpoint, scenario):
            continue
        if outcome == "transport_error":
            failed += hist.get_total_count()
        else:
            answered += hist.get_total_count()
    return answered, failed


def _cpu(side: GeneratorCpu | TargetCpu) -> float | None:
    """A side's CPU in % of one core: its busiest process, or its tree per core if higher."""
    processes = side.get("processes") or []
    if not processes:
        return None
    busiest = max(float(p.get("cpu_percent_mean", 0.0)) for p in processes)
    return max(busiest, float(side.get("cpu_percent_per_core_mean") or 0.0))


def _wait(side: GeneratorCpu | TargetCpu) -> float:
    """The longest a process of the side waited for a core, in % of wall time."""
    return max(
        (float(p.get("cpu_wait_percent_mean", 0.0)) for p in side.get("processes", [])), default=0.0
    )


def _starved(name: str, side: GeneratorCpu | TargetCpu, notes: list[str]) -> bool:
    """Whether the side wanted a whole core and did not get it (the machine was busy)."""
    if side.get("saturated") or not side.get("starved"):
        return False
    notes.append(
        f"the {name} got {_cpu(side) or 0:.0f} % of a core and waited for one another "
        f"{_wait(side):.0f} % of the time: it wanted more CPU than the machine, shared with "
        "other work, gave it"
    )
    return True


def _side(
    generator: GeneratorCpu, target_cpu: TargetCpu, overloaded: bool, notes: list[str]
) -> Saturated | None:
    generator_busy = bool(generator.get("saturated")) or _starved("generator", generator, notes)
    target_known = bool(target_cpu.get("available"))
    target_busy = target_known and (
        bool(target_cpu.get("saturated")) or _starved("target", target_cpu, notes)
    )
    if generator_busy and target_busy:
        return "both"
    if generator_busy and generator.get("saturated"):
        notes.append(
            "the load generator was saturated: the figures are bounded by it, not by the target "
            "(try --workers, or fewer devices per generator)"
        )
    if generator_busy:
        return "generator"
    if target_busy:
        return "target"
    if not overloaded:
        return None
    if target_known:
        notes.append(
            "neither side's CPU was saturated, yet the devices waited on answers: the target is "
            "slow without being busy (a sleep, a lock, I/O, a connection or worker limit) or the "
            "path to it is the limit; counted as the target"
        )
    else:
        notes.append(
            "the generator was not saturated, so the devices waited on the target's answers: "
            "the target (or the path to it) is the limit; its own CPU was not measured"
        )
    return "target"


def load_account(
    measurements: Measurements,
    *,
    interval_s: float,
    stopped: float | None,
    generator: GeneratorCpu,
    target_cpu: TargetCpu,
    answered: int,
    asked_requests: float | None = None,
) -> Load:
    """The summary's ``load`` section. ``answered`` is the outcome account's total;
    ``asked_requests``: what load stages asked for over the run (``sim.shape.stages``), instead of
    one rate."""
    devices = measurements.counters.get("devices_started", 0)
    delivered, transport_errors = _paced_counts(measurements)
    in_flight = measurements.started - answered
    notes: list[str] = []
    active_s = 0.0
    if devices and stopped:
        # Each device owes one paced request per interval from the end of its setup (its first
        # token); one that never finished setting up owes them from its start.
        owed_s = devices * stopped - measurements.device_start_sum_s
        active_s = max(0.0, (owed_s - measurements.device_setup_sum_s) / devices)
    offered_rps: float | None = None
    offered: float | None = None
    shortfall: float | None = None
    delivered_rps = delivered / active_s if active_s > 0 else 0.0
    if asked_requests is not None and active_s > 0:
        offered = asked_requests
        offered_rps = asked_requests / active_s  # the stages' mean over the run
        shortfall = max(0.0, 1.0 - delivered / offered) if offered > 0 else 0.0
        delivered_rps = offered_rps * delivered / offered if offered > 0 else 0.0
    elif interval_s > 0:
        offered_rps = devices / interval_s
        offered = offered_rps * active_s
        shortfall = max(0.0, 1.0 - delivered / offered) if offered > 0 else 0.0
        delivered_rps = offered_rps * delivered / offered if offered > 0 else 0.0
    else:
        notes.append(
            "--interval 0: each device sends its next request as soon as the last is answered, "
            "so the fleet offers no fixed rate and nothing can fall short of it"
        )
    short = shortfall is not None and shortfall > MAX_SHORTFALL
    waiting = (interval_s > 0 or asked_requests is not None) and in_flight > max(
        1.0, IN_FLIGHT_SHARE * devices
    )
    overloaded = short or waiting
    if transport_errors:
        notes.append(f"{transport_errors} paced requests got no answer (transport_error)")
    if not target_cpu.get("available"):
        notes.append(
            "the target's CPU was not measured: it is not the embedded target and its /metrics "
            "exports no process_cpu_seconds_total"
        )
    kept = measurements.counters.get(KEPT_CONNECTION, 0)
    if measurements.started:
        notes.append(
            f"requests sent: {kept:,} on the kept connection without the HTTP client library, "
            f"{measurements.started - kept:,} through it"
        )
    saturated = _side(generator, target_cpu, overloaded, notes)
    load: Load = {
        "offered_rps": None if offered_rps is None else round(offered_rps, 2),
        "delivered_rps": round(delivered_rps, 2),
        "shortfall": None if shortfall is None else round(shortfall, 4),
        "in_flight_at_stop": in_flight,
        # The gauge when the stop began; in flight at stop is lower by the answers that still
        # arrived while Locust stopped the users (no device sends anything new by then).
        "in_flight_when_stopping": measurements.counters.get("in_flight_when_stopping", 0),
        "saturated": saturated,
        "overloaded": overloaded,
        "notes": notes,
        "offered_requests": None if offered is None else round(offered, 1),
        "delivered_requests": delivered,
        "mean_device_active_s": round(active_s, 3),
        "devices_ready": measurements.counters.get("devices_ready", 0),
        "target_cpu_percent": _cpu(target_cpu) if target_cpu.get("available") else None,
        "generator_cpu_percent": _cpu(generator),
        "target_cpu_wait_percent": _wait(target_cpu) if target_cpu.get("available") else None,
        "generator_cpu_wait_percent": _wait(generator),
        "rule": (
            f"overloaded: more than {MAX_SHORTFALL * 100:.0f} % short of the offered paced "
            f"requests, or more than {IN_FLIGHT_SHARE * 100:.0f} % of the devices still waiting "
            "for an answer at stop; " + SATURATION_RULE
        ),
    }
    load["line"] = load_line(load)
    return load


def _thousands(value: float) -> str:
    return f"{value:,.0f}"


def load_line(load: Load) -> str:
    """One plain sentence: asked, served, short by, unanswered at stop, the busy side's CPU."""
    parts = []
    offered_rps = load.get("offered_rps")
    if offered_rps is None:
        parts.append(
            f"served {_thousands(load['delivered_rps'])} req/s as fast as answers came "
            "(--interval 0: no offered rate)"
        )
    else:
        shortfall = load.get("shortfall") or 0.0
        short = f"{shortfall * 100:.0f} % short" if shortfall >= 0.005 else "none short"
        parts.append(
            f"asked {_thousands(offered_rps)} req/s, "
            f"served {_thousands(load['delivered_rps'])} ({short})"
        )
    in_flight = load.get("in_flight_at_stop", 0)
    parts.append(
        f"{_thousands(in_flight)} request{'s' if in_flight != 1 else ''} unanswered at stop"
    )
    target, generator = load.get("target_cpu_percent"), load.get("generator_cpu_percent")
    cpu = []
    if target is not None:
        cpu.append(f"the target's core was at {target:.0f} %")
    if generator is not None:
        cpu.append(f"the generator's at {generator:.0f} %")
    waits = [
        f"the {name} waited for a core {wait:.0f} % of the time"
        for name, wait in (
            ("target", load.get("target_cpu_wait_percent")),
            ("generator", load.get("generator_cpu_wait_percent")),
        )
        if wait is not None and wait >= NOTABLE_WAIT_PERCENT
    ]
    cpu += waits
    if cpu:
        parts.append(", ".join(cpu))
    line = "; ".join(parts)
    side = load.get("saturated")
    if side:
        line += "; the limit: " + {"both": "both sides"}.get(side, f"the {side}")
    return line
