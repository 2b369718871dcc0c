"""The MQTT transport's account (``--transport mqtt``): its two rows and its counters.

Every CONNECT and every PUBLISH is a request of the outcome account like an HTTP one, recorded
under the rows ``mqtt connect`` (CONNECT to CONNACK: the broker's authentication of the token)
and ``mqtt publish`` (PUBLISH to PUBACK), with Locust's request type ``MQTT``; a CONNACK code
is judged as the HTTP status it stands for (:meth:`sim.profiles.mqtt_settings.MqttSettings.status`).
Sessions that end without the device asking are counted by cause. Readings keep the HTTP
telemetry account: sent when published, acknowledged at their PUBACK (also one that came only
after a reconnect, when paho sent the reading again), against the target's ``/admin/stats``.

This module never imports Locust or gevent; the devices' side is :mod:`sim.device.mqtt_tasks`.
"""

from __future__ import annotations

from collections import Counter
from typing import cast

from sim.account.measure import Measurements, new_histogram, percentiles
from sim.artefacts.summary_file import MqttRow, MqttSection, OutcomeCounts
from sim.outcomes import OUTCOMES, Outcome

__all__ = [
    "CLOSED",
    "CONNECT_ROW",
    "PUBLISH_ROW",
    "RECONNECTS",
    "REQUEST_TYPE",
    "RESENT_ACKED",
    "connack_counter",
    "mqtt_line",
    "mqtt_section",
]

CONNECT_ROW = "mqtt connect"
PUBLISH_ROW = "mqtt publish"
REQUEST_TYPE = "MQTT"  # Locust's request_type for both rows (its stats, CSV, web UI)
CLOSED = "mqtt closed "  # + cause: a counter per cause (sim.device.mqtt_session.CLOSE_CAUSES)
RECONNECTS = "mqtt reconnects"
RESENT_ACKED = "mqtt resent acknowledged"
CONNACK = "mqtt connack "  # + code, or "none"


def _row(measurements: Measurements, endpoint: str) -> MqttRow:
    hist = new_histogram()
    outcomes: Counter[Outcome] = Counter()
    for key, row in measurements.latency.items():
        if key.endpoint == endpoint:
            hist.add(row)
            outcomes[key.outcome] += row.get_total_count()
    return {
        "count": hist.get_total_count(),
        "outcomes": cast(OutcomeCounts, {o: outcomes[o] for o in OUTCOMES if outcomes[o]}),
        "latency_us": percentiles(hist),
    }


def mqtt_section(measurements: Measurements) -> MqttSection | None:
    """``summary.json`` ``mqtt``: None when no device spoke MQTT."""
    if not any(key.endpoint in (CONNECT_ROW, PUBLISH_ROW) for key in measurements.latency):
        return None
    counters = measurements.counters
    return {
        "connect": _row(measurements, CONNECT_ROW),
        "publish": _row(measurements, PUBLISH_ROW),
        "closes": {
            name.removeprefix(CLOSED): count
            for name, count in sorted(counters.items())
            if name.startswith(CLOSED)
        },
        "reconnects": counters.get(RECONNECTS, 0),
        "connack_codes": {
            name.removeprefix(CONNACK): count
            for name, count in sorted(counters.items())
            if name.startswith(CONNACK)
        },
        "resent_acknowledged": counters.get(RESENT_ACKED, 0),
    }


def connack_counter(code: int | None) -> str:
    """The counter of a CONNACK code (``none``: no CONNACK came)."""
    return CONNACK + ("none" if code is None else str(code))


def _ms(latency_us: float | None) -> str:
    return "-" if latency_us is None else f"{latency_us / 1000:.2f} ms"


def mqtt_line(section: MqttSection) -> str:
    """One line for the table: CONNACK and PUBACK latency, closes by cause, reconnects."""
    connect, publish = section["connect"], section["publish"]
    closes = ", ".join(f"{cause} {n}" for cause, n in section["closes"].items()) or "none"
    codes = ", ".join(f"{code}: {n}" for code, n in section["connack_codes"].items())
    return (
        f"mqtt: {connect['count']} CONNECTs (CONNACK p50 "
        f"{_ms(connect['latency_us'].get('p50'))}, p99 {_ms(connect['latency_us'].get('p99'))}; "
        f"codes {codes or '-'}), {publish['count']} PUBLISHes (PUBACK p50 "
        f"{_ms(publish['latency_us'].get('p50'))}, p99 {_ms(publish['latency_us'].get('p99'))}); "
        f"sessions closed: {closes}; reconnects {section['reconnects']}; "
        f"resent and acknowledged {section['resent_acknowledged']}"
    )
