"""Fleet storms: the whole fleet hit by one event at once, and how long it takes to recover.

``expiry-storm``: the fleet fetches its tokens together, all of one lifetime (the embedded
target's ``--token-ttl``, or the profile's ``short_ttl_s`` for minted tokens), so they all expire
in the same second or two. The devices keep reporting; each one's next reading is refused for
expiry, and it renews its token (the refresh burst on the token endpoint) and carries on. The
summary's ``storms.expiry`` section gives the burst (requests, latency, refusals) and the time to
recover: from the earliest ``exp`` until the last device is served ``ok`` again.

With a minted-token profile there is no token endpoint: devices re-mint locally, the burst is
empty and the storm is on the API alone (the refused readings, then the new tokens' first use).

This module never imports Locust or gevent (the orchestrator reads it); the devices' side is
:mod:`sim.device.storm_tasks`. ``python -m benchmarks.storms`` prints a storm's time to recover
without and with ``--backoff``.

``reconnect-storm``: the embedded target is stopped and started again on the same database
mid-run (:class:`Outage`), or, against a ``--target``, the user's ``--outage-cmd`` runs (a
restart of their service) and the outage lasts until the API answers HTTP again; every device
cut off re-authenticates, and ``storms.reconnect`` gives the outage, the re-authentication
burst, the time until all are served again, and the readings acknowledged but lost (must be 0).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Self, cast, get_args

from sim.account.measure import Measurements, new_histogram, new_second_histogram, percentiles
from sim.account.mqtt import CONNECT_ROW
from sim.account.rotation import rotation_line
from sim.artefacts.summary_file import (
    ExpiryStorm,
    OutcomeCounts,
    ReconnectStorm,
    StormBurst,
    Storms,
    Summary,
)
from sim.errors import ConfigError, SimError
from sim.outcomes import OUTCOMES, Outcome
from sim.shape.scenarios import Scenario, parse_scenarios

__all__ = [
    "RECONNECT_TOKEN_SCENARIO",
    "STORMS",
    "STORM_TOKEN_SCENARIO",
    "MidRun",
    "Outage",
    "Storm",
    "check_storm",
    "expiry_storm",
    "parse_run_scenario",
    "recovery_line",
    "storm_section",
]

# rotation-storm and revocation are the trust scenarios (sim.run.trust): run like storms,
# closed-loop on one host, with their own sections.
Storm = Literal["expiry-storm", "reconnect-storm", "rotation-storm", "revocation"]
STORMS: tuple[Storm, ...] = get_args(Storm)[:2]  # the ones ``python -m benchmarks.storms`` compares
# The scenario name token requests are recorded under while a device is in the storm (from its
# storm token's refusal to its next ok): the burst, apart from the expiry scenario's later renewals.
STORM_TOKEN_SCENARIO = "expiry-storm"
RECONNECT_TOKEN_SCENARIO = "reconnect-storm"
# The moments each device marks once (Measurements.storm_marks).
MARK_EXP, MARK_REFUSED, MARK_OK = "exp", "refused", "ok"
MARK_CUT, MARK_BACK = "cut", "back"  # reconnect: first failed request, first ok after it
# The reconnect storm's outage starts this share of --duration after Locust's test starts.
OUTAGE_AT_SHARE = 0.35
RECONNECT_MIN_DURATION_S = 12


def parse_run_scenario(text: str) -> tuple[dict[Scenario, int], Storm | None]:
    """``--scenario``: a storm's name (which runs the expiry task), or scenario weights."""
    name = text.strip()
    if name == "expiry-storm":
        return {"expiry": 1}, "expiry-storm"
    if name in ("reconnect-storm", "rotation-storm", "revocation"):
        return {"verification": 1}, cast(Storm, name)
    return parse_scenarios(text), None


def check_storm(
    storm: Storm | None,
    refresh: str,
    duration_s: float,
    token_ttl: int | None,
    leeway_s: int,
    *,
    embedded: bool = True,
    outage_cmd: bool = False,
) -> None:
    """A storm the run can show: renewed on expiry, and the tokens expire well within the run
    (``token_ttl`` None: an external target's lifetime, not known here); a reconnect storm
    restarts the embedded target, or runs ``--outage-cmd`` against a ``--target``, and needs
    time before and after the outage."""
    if outage_cmd and (storm != "reconnect-storm" or embedded):
        raise ConfigError("--outage-cmd is the outage of a --target API in reconnect-storm")
    if storm is None or storm in ("rotation-storm", "revocation"):
        return  # sim.run.trust checks these
    if storm == "reconnect-storm":
        if not embedded and not outage_cmd:
            raise ConfigError(
                "reconnect-storm against a --target needs --outage-cmd CMD (a command that "
                "restarts your API: it runs 35 % into the run)"
            )
        if duration_s < RECONNECT_MIN_DURATION_S:
            raise ConfigError(
                f"reconnect-storm: make --duration at least {RECONNECT_MIN_DURATION_S} s"
            )
        return
    if refresh != "on-expiry":
        raise ConfigError(f"{storm} renews on expiry: drop --refresh {refresh}")
    if token_ttl is not None and duration_s < token_ttl + leeway_s + 3:
        raise ConfigError(
            f"{storm}: the tokens expire {token_ttl + leeway_s} s in (token TTL + leeway); "
            f"make --duration at least {token_ttl + leeway_s + 3} s to see the recovery"
        )


def _burst(
    measurements: Measurements, scenario: str = STORM_TOKEN_SCENARIO, rows: str = "token "
) -> StormBurst:
    """The storm's requests of the rows whose name starts with ``rows``: token calls, or
    (``mqtt connect``) the MQTT fleet's CONNECTs."""
    hist = new_histogram()
    outcomes: Counter[Outcome] = Counter()
    for key, row in measurements.latency.items():
        if key.scenario == scenario and key.endpoint.startswith(rows):
            hist.add(row)
            outcomes[key.outcome] += row.get_total_count()
    per_second: Counter[int] = Counter()
    for series, seconds in measurements.latency_seconds.items():
        if series.scenario == scenario and series.endpoint.startswith(rows):
            for second, second_hist in seconds.items():
                per_second[second] += second_hist.get_total_count()
    counts = cast(OutcomeCounts, {o: outcomes[o] for o in OUTCOMES if outcomes[o]})
    return {
        "requests": hist.get_total_count(),
        "outcomes": counts,
        "refusals": sum(n for o, n in outcomes.items() if o != "ok"),
        "latency_us": percentiles(hist),
        "first_t": min(per_second) if per_second else None,
        "last_t": max(per_second) if per_second else None,
        "peak_rps": max(per_second.values()) if per_second else 0,
    }


def expiry_storm(measurements: Measurements, *, backoff: bool) -> ExpiryStorm:
    """The storm from each device's marks: when its first token expired, when it was refused
    for it, when it was next served ``ok``."""
    marks = [m for m in measurements.storm_marks.values() if MARK_EXP in m]
    exps = [m[MARK_EXP] for m in marks]
    expires_at = min(exps) if exps else None
    recovered = [m for m in marks if MARK_REFUSED in m and MARK_OK in m]
    recover = new_second_histogram()
    for m in recovered:
        recover.record_value(max(1, round((m[MARK_OK] - m[MARK_EXP]) * 1_000_000)))
    every_device = bool(marks) and len(recovered) == len(marks)
    time_to_recover = (
        round(max(m[MARK_OK] for m in recovered) - expires_at, 3)
        if every_device and expires_at is not None
        else None
    )
    storm: ExpiryStorm = {
        "devices": len(marks),
        "expires_at": expires_at,
        "expiry_window_s": round(max(exps) - min(exps), 3) if exps else None,
        "devices_refused": sum(1 for m in marks if MARK_REFUSED in m),
        "devices_recovered": len(recovered),
        "time_to_recover_s": time_to_recover,
        "device_recover_us": percentiles(recover),
        "backoff": backoff,
        "burst": _burst(measurements),
    }
    if any(key.endpoint == CONNECT_ROW for key in measurements.latency):
        storm["connect_burst"] = _burst(measurements, rows=CONNECT_ROW)  # --transport mqtt
    return storm


def reconnect_storm(
    measurements: Measurements, outage: Outage | None, *, backoff: bool, lost: int | None
) -> ReconnectStorm:
    """The outage and the devices' way back: cut off (a request failed), then ok again."""
    down_at = outage.down_at if outage else None
    up_at = outage.up_at if outage else None
    cut = [m for m in measurements.storm_marks.values() if MARK_CUT in m]
    back = [m for m in cut if MARK_BACK in m]
    recover = new_second_histogram()
    since = up_at if up_at is not None else 0.0
    for m in back:
        recover.record_value(max(1, round((m[MARK_BACK] - since) * 1_000_000)))
    every_device = bool(cut) and len(back) == len(cut)
    storm: ReconnectStorm = {
        "down_at": down_at,
        "up_at": up_at,
        "outage_s": round(up_at - down_at, 3) if up_at and down_at else None,
        "devices": len(cut),
        "devices_recovered": len(back),
        "time_to_recover_s": (
            round(max(m[MARK_BACK] for m in back) - up_at, 3)
            if every_device and up_at is not None
            else None
        ),
        "device_recover_us": percentiles(recover),
        "acknowledged_lost": lost,
        "backoff": backoff,
        "burst": _burst(measurements, RECONNECT_TOKEN_SCENARIO),
    }
    if any(key.endpoint == CONNECT_ROW for key in measurements.latency):
        # --transport mqtt: the sessions' return is the burst on the broker.
        storm["connect_burst"] = _burst(measurements, RECONNECT_TOKEN_SCENARIO, CONNECT_ROW)
    return storm


def storm_section(
    measurements: Measurements,
    storm: Storm | None,
    *,
    backoff: bool,
    outage: Outage | None = None,
    lost: int | None = None,
) -> Storms | None:
    """``summary.json`` ``storms``: None without a storm scenario."""
    if storm is None or storm not in STORMS:
        return None
    if storm == "reconnect-storm":
        return {"reconnect": reconnect_storm(measurements, outage, backoff=backoff, lost=lost)}
    return {"expiry": expiry_storm(measurements, backoff=backoff)}


class MidRun:
    """Once Locust's test has started (its progress file appears), wait ``after_s``, then run
    ``action``; it gets the stop event, set when the load ends, to bound any waiting of its own.
    A :class:`SimError` it raises is kept in ``error`` for the run's verdict."""

    def __init__(
        self, action: Callable[[threading.Event], None], progress: Path, after_s: float
    ) -> None:
        self._action = action
        self._progress = progress
        self._after_s = after_s
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="fleetbench-midrun", daemon=True)

    def _run(self) -> None:
        while not self._progress.exists():
            if self._stop.wait(0.1):
                return
        if self._stop.wait(self._after_s):
            return
        try:
            self._action(self._stop)
        except SimError as e:
            self.error = str(e)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class Outage(MidRun):
    """The reconnect storm's outage, on a thread beside Locust: once Locust's test has started,
    wait ``OUTAGE_AT_SHARE`` of the run, then restart the target (``restart`` returns when it
    went down and when it answered again)."""

    def __init__(self, restart: Callable[[], tuple[float, float]], progress: Path, after_s: float):
        self.down_at: float | None = None
        self.up_at: float | None = None

        def outage(_: threading.Event) -> None:
            self.down_at, self.up_at = restart()

        super().__init__(outage, progress, after_s)


def _reconnect_line(storm: ReconnectStorm) -> str:
    burst = storm["burst"]
    latency = burst["latency_us"]
    p99 = f"p99 {latency['p99'] / 1000:.1f} ms" if latency["count"] else "no token requests"
    recover = storm["time_to_recover_s"]
    outage = storm["outage_s"]
    recovered = (
        f"all back to ok {recover:.2f} s after it answered again"
        if recover is not None
        else f"{storm['devices_recovered']}/{storm['devices']} devices back to ok by the end"
    )
    connects = storm.get("connect_burst")
    reconnects = (
        f"; {connects['requests']} CONNECTs (peak {connects['peak_rps']}/s, "
        f"{connects['refusals']} refused or failed)"
        if connects is not None
        else ""
    )
    return (
        f"reconnect storm{' (backoff)' if storm['backoff'] else ''}: target down "
        f"{outage if outage is not None else '-'} s, {storm['devices']} devices cut off; "
        f"re-authentication {burst['requests']} token requests (peak {burst['peak_rps']}/s, "
        f"{p99}, {burst['refusals']} refused or failed){reconnects}; {recovered}; acknowledged "
        f"readings lost: "
        f"{storm['acknowledged_lost'] if storm['acknowledged_lost'] is not None else '-'}"
    )


def recovery_line(summary: Summary) -> str | None:
    """One line for the table: the storm's burst and its time to recover."""
    storms = summary.get("storms")
    if storms and "reconnect" in storms:
        return _reconnect_line(storms["reconnect"])
    if storms and "rotation" in storms:
        return rotation_line(storms["rotation"])
    storm = storms.get("expiry") if storms else None
    if storm is None:
        return None
    burst = storm["burst"]
    latency = burst["latency_us"]
    p99 = f"p99 {latency['p99'] / 1000:.1f} ms" if latency["count"] else "no token requests"
    recover = storm["time_to_recover_s"]
    recovered = (
        f"all back to ok {recover:.2f} s after the expiry"
        if recover is not None
        else f"{storm['devices_recovered']}/{storm['devices']} devices back to ok by the end"
    )
    window = storm["expiry_window_s"]
    connects = storm.get("connect_burst")
    reconnects = ""
    if connects is not None:
        latency = connects["latency_us"]
        connect_p99 = f"p99 {latency['p99'] / 1000:.1f} ms" if latency["count"] else "none"
        lost = summary["telemetry"].get("lost")
        reconnects = (
            f"; reconnect {connects['requests']} CONNECTs (peak {connects['peak_rps']}/s, "
            f"{connect_p99}, {connects['refusals']} refused or failed); acknowledged readings "
            f"lost: {lost if lost is not None else '-'}"
        )
    return (
        f"expiry storm{' (backoff)' if storm['backoff'] else ''}: {storm['devices']} tokens "
        f"expired within {window if window is not None else 0:.2f} s; burst "
        f"{burst['requests']} token requests (peak {burst['peak_rps']}/s, {p99}, "
        f"{burst['refusals']} refused or failed){reconnects}; {recovered}"
    )
