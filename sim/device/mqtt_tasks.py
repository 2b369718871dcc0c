"""The device's side of ``--transport mqtt``: one MQTT session per device, its access token as
the CONNECT password, telemetry published at QoS 1 (:mod:`sim.account.mqtt` for the account).

Tokens come as over HTTP (the token call or minted, as the profile says), renewed when the
session must be opened again with an expired one. A device notices at its next reading that
the broker closed its session (at the token's expiry, as the Cloud IoT Core design does, or
otherwise), counts the close by cause, renews its token if it expired and connects again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import gevent

from sim.account import storms
from sim.account.measure import WARMUP_SCENARIO
from sim.account.mqtt import (
    CLOSED,
    CONNECT_ROW,
    PUBLISH_ROW,
    RECONNECTS,
    REQUEST_TYPE,
    RESENT_ACKED,
    connack_counter,
)
from sim.device.keepalive import KeptConnection
from sim.device.mqtt_session import MqttSession, ShortQueue
from sim.device.run_state import MEASUREMENTS, STATE
from sim.device.tokens import HeldToken
from sim.device.trust_tasks import TrustDevice
from sim.outcomes import CLOCK_SLOP_S, Outcome, judge_held
from sim.profiles.http import claimed_exp
from sim.shape.scenarios import Scenario

__all__ = ["MqttDevice", "watching"]

# What each reading carries besides its seq and time: the HTTP telemetry body's values.
READING_VALUES = {"temp_c": 21.5, "battery": 0.93}
STORED_STATUS = 202  # a PUBACK: the reading stored, as HTTP's 202
_DETACHED = KeptConnection(None, 0.0)  # holds no connection: release() has nothing to give back


class MqttDevice(TrustDevice):
    """The MQTT half of a :class:`sim.device.user.FleetDevice`."""

    connection_timeout: float
    network_timeout: float
    mqtt_session: MqttSession | None = None
    _topic = ""
    # The open session's token's own exp (its claim; else as the device reckoned it from
    # expires_in at receipt, which is later by the token call's latency): what the broker's
    # close and the judging of its PUBACKs go by.
    _session_exp = 0.0
    _unacked: list[int]  # readings (message ids) whose PUBACK has not come: paho sends them again

    def _session(self) -> MqttSession:
        if self.mqtt_session is None:
            settings = self.config.mqtt_settings
            values = {"device_id": self.device.id, "n": self.device_index}
            self.mqtt_session = MqttSession(settings, values)
            self._topic = settings.telemetry_topic.format(**values)
            self._unacked = []
        return self.mqtt_session

    def on_stop(self) -> None:
        if self.mqtt_session is not None:
            self.mqtt_session.close()

    def _late_acks(self) -> None:
        """Readings acknowledged since they were cut off (sent again after a reconnect)."""
        if self.mqtt_session is None or not self._unacked:
            return
        session, waiting = self.mqtt_session, []
        for mid in self._unacked:
            if session.acknowledged(mid):
                session.forget(mid)
                MEASUREMENTS.telemetry[self.device.id][1] += 1
                MEASUREMENTS.counters[RESENT_ACKED] += 1
            else:
                waiting.append(mid)
        self._unacked = waiting

    def _drop_idle_http(self) -> None:
        """Close the token call's client and its idle connection: a device of an MQTT fleet
        holds one socket, its session (10,000 devices, 10,000 descriptors, not twice that), and
        not the HTTP client between renewals (its next token call makes one again)."""
        self.client.client.clientpool.close()
        # The lean path's hold on it too (an MQTT device sends no HTTP reading).
        self._http, self.kept = None, _DETACHED

    def _reopen(self) -> HeldToken | None:
        """The token of a session that holds: the one open, or a new one (its token renewed
        first if it expired); None when there is none. A session found closed is counted by
        cause. The storms' marks: in the expiry storm, its token's exp, the expiry close and
        the session open again; in the reconnect storm, the first loss (or failed CONNECT)
        and the session open again after it."""
        scenario: Scenario = "expiry" if self.config.storm == "expiry-storm" else "verification"
        storm = scenario == "expiry"
        outage = self.config.storm == "reconnect-storm"
        session = self._session()
        held = self.tokens.get(scenario)
        if storm and held is not None:
            self._mark(storms.MARK_EXP, held.exp)  # once: the token fetched with the fleet
        if session.alive() and held is not None:
            return held
        if session.lost():
            cause = session.close_cause(self._session_exp, time.time(), CLOCK_SLOP_S)
            session.forget_loss()
            MEASUREMENTS.counters[CLOSED + cause] += 1
            if storm and cause == "expiry_close":
                MEASUREMENTS.counters["expirations"] += 1
                MEASUREMENTS.device_sets["expired"].add(self.device.id)
                MEASUREMENTS.counters["refreshes"] += 1
                self._mark(storms.MARK_REFUSED, time.time())
            elif outage and cause != "expiry_close":
                self._mark(storms.MARK_CUT, time.time())
        recorded_as: str = scenario
        if storm and self._in_storm():
            recorded_as = storms.STORM_TOKEN_SCENARIO
        elif outage and self._cut_off():
            recorded_as = storms.RECONNECT_TOKEN_SCENARIO
        if held is None or time.time() >= held.exp - CLOCK_SLOP_S:
            held = self.tokens_for(scenario, recorded_as)
            self._drop_idle_http()
            if held is None:
                return None
        if not self._connect(scenario, recorded_as, held):
            if outage and session.connack is None:
                self._mark(storms.MARK_CUT, time.time())  # no broker to answer
            return None
        if storm and self._in_storm():
            # Recovered: its session open again (the next reading is stored on it).
            self._mark(storms.MARK_OK, time.time())
            MEASUREMENTS.device_sets["recovered"].add(self.device.id)
        elif outage and self._cut_off():
            self._mark(storms.MARK_BACK, time.time())
        return held

    def _connect(self, scenario: Scenario, recorded_as: str, held: HeldToken) -> bool:
        """CONNECT with the token, judged by its CONNACK as HTTP's status it stands for."""
        session = self._session()
        if session.started:
            MEASUREMENTS.counters[RECONNECTS] += 1
        # A session per reading: its CONNECT is the reading's slot of the open model, so the
        # corrected latency (and capacity's objective) is the auth cost's, from the intended send.
        per_reading = self._per_reading()
        self._start(paced=per_reading)
        if per_reading and recorded_as == scenario and self._warming():
            recorded_as, self._lag_s = WARMUP_SCENARIO, None  # sent and counted, not judged
        started = time.perf_counter()
        code = session.connect(held.token, self.connection_timeout)
        latency_ms = (time.perf_counter() - started) * 1000
        settings = session.settings
        status = settings.status(code)
        now = time.time()
        # An MQTT 3.1.1 refusal does not say why: a token past its exp was refused for it.
        expired = status in (401, 403) and now >= held.exp - CLOCK_SLOP_S
        outcome = judge_held(
            401 if expired else status,
            "expired" if expired else settings.reason(code),
            exp=held.exp,
            now=now,
            leeway_s=self.config.leeway_s,
        )
        MEASUREMENTS.counters[connack_counter(code)] += 1
        reason = "" if outcome == "ok" else settings.reason(code)
        self.record_exchange(
            REQUEST_TYPE, CONNECT_ROW, recorded_as, outcome, latency_ms, status, reason, 0
        )
        if session.connected:
            self._session_exp = claimed_exp(held.token, held.exp)
        elif outcome == "refused_valid":
            self.tokens.pop(scenario, None)  # renew before the next reading
        return session.connected

    def mqtt_publish(self, scenario: Scenario, held: HeldToken) -> Outcome:
        """One reading at the settings' QoS, waited for until its PUBACK; a session closed
        under it is opened again once (paho sends the reading again, DUP, after the CONNACK)."""
        self._start()  # the reading's slot in the open model's schedule
        recorded_as: str = scenario
        if self._warming():
            recorded_as, self._lag_s = WARMUP_SCENARIO, None  # sent and counted, not judged
        session = self._session()
        self.seq += 1
        payload = json.dumps(
            {"seq": self.seq, "ts": round(time.time(), 6), "values": READING_VALUES}
        ).encode()
        MEASUREMENTS.telemetry[self.device.id][0] += 1
        sent_at = time.time()
        started = time.perf_counter()
        deadline = time.monotonic() + self.network_timeout
        mid = session.publish(self._topic, payload, self.network_timeout)
        # The token the reading is stored under, and when it was sent under it.
        judged_exp, judged_at = min(held.exp, self._session_exp or held.exp), sent_at
        if not session.acknowledged(mid) and session.lost():
            renewed = self._reopen()
            if renewed is not None:
                # paho sends it again on the new session, under the renewed token: a reading
                # first sent on a session the broker had closed at its exp is stored under the
                # new one, and judging it by the old exp called it accepted_invalid.
                judged_exp = min(renewed.exp, self._session_exp or renewed.exp)
                judged_at = time.time()
                session.pump(
                    lambda: session.acknowledged(mid) or not session.connected,
                    max(0.0, deadline - time.monotonic()),
                )
        latency_ms = (time.perf_counter() - started) * 1000
        if session.acknowledged(mid):
            session.forget(mid)
            MEASUREMENTS.telemetry[self.device.id][1] += 1
            status, reason = STORED_STATUS, ""
            # Stored on a session whose token was past exp and leeway when the reading was
            # sent: the broker honoured an expired token.
            outcome = judge_held(
                status,
                reason,
                exp=judged_exp,
                now=judged_at,
                leeway_s=self.config.leeway_s,
            )
        else:
            self._unacked.append(mid)  # paho keeps it: it may yet be acknowledged
            status, reason, outcome = 0, "no_puback", "transport_error"
        self.record_exchange(
            REQUEST_TYPE, PUBLISH_ROW, recorded_as, outcome, latency_ms, status, reason,
            len(payload),
        )  # fmt: skip
        return outcome

    def _per_reading(self) -> bool:
        """Whether each reading opens a session of its own (--mqtt-session per-reading)."""
        return self.config.mqtt_session == "per-reading"

    def mqtt_open(self) -> None:
        """Open the device's session (at its start), before its first reading; the HTTP client
        of its first token goes. A device with a session per reading opens none until then."""
        tasks = getattr(self, "_taskset_instance", None)  # Locust's, made before on_start
        if tasks is not None and not tasks._task_queue:
            tasks._task_queue = ShortQueue()  # one task queued at a time: no 760-byte deque
        self._drop_idle_http()
        if not self._per_reading():
            self._reopen()

    def _revoked_probe(self) -> bool:
        """--scenario revocation over MQTT, for a device the run revokes: once its revocation
        is under way, each reading's turn is a new CONNECT with the token it holds, judged
        against the revoke calls' journal (a CONNACK 0 past the bound: a bad token accepted).
        False: not revoked (yet), the steady state."""
        journal = self.revoked_journal()
        if journal is None or journal.sent.get(self.device.id) is None:
            return False
        held = self.tokens.get("verification")
        if held is None or time.time() >= held.exp:
            return True  # it is issued no new token, and has no live one to present
        session = self._session()
        session.close()  # its own close: the probe is a new session
        judge = self.revocation_judge(journal, held, time.time())
        self._start(paced=False)
        started = time.perf_counter()
        code = session.connect(held.token, self.connection_timeout)
        latency_ms = (time.perf_counter() - started) * 1000
        settings = session.settings
        status, reason = settings.status(code), settings.reason(code)
        outcome = judge(status, reason)
        MEASUREMENTS.counters[connack_counter(code)] += 1
        self.record_exchange(
            REQUEST_TYPE, CONNECT_ROW, "revocation", outcome, latency_ms, status,
            "" if outcome == "ok" else reason, 0,
        )  # fmt: skip
        session.close()
        if outcome == "refused_valid":
            self.tokens.pop("verification", None)  # not revoked yet: renew as it would
        return True

    def mqtt_telemetry(self) -> None:
        """The task over MQTT: a reading on the session held (opened again if it was closed)."""
        if self.config.storm == "revocation" and self._revoked_probe():
            return
        storm = self.config.storm == "expiry-storm"
        scenario: Scenario = "expiry" if storm else "verification"
        MEASUREMENTS.counters[f"runs {scenario}"] += 1
        if storm:
            MEASUREMENTS.device_sets["expiry"].add(self.device.id)
        self._late_acks()
        held = self._reopen()
        if held is not None:
            self.mqtt_publish(scenario, held)
        if self._per_reading() and self.mqtt_session is not None:
            # Its own DISCONNECT, not a loss. A reading still unacknowledged stays with paho,
            # sent again (DUP) after the next CONNECT and counted then (_late_acks).
            self.mqtt_session.close()

    def watch(self, delay_s: float) -> None:
        """Wait ``delay_s`` (until the next reading) on the session's socket, as a device in
        paho's loop does: a close by the broker is found when it happens and the session
        opened again at once (the fleet's reconnect storm is in the second of the close)."""
        deadline = time.monotonic() + delay_s
        session = self.mqtt_session
        while session is not None and not STATE.get("stopping"):
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return
            session.pump(lambda: not session.connected, remaining_s)
            if session.connected or not session.lost():
                break  # the wait is over, or there is no session to watch
            self._late_acks()
            if self._reopen() is None:
                break  # no token or refused: the next reading tries again
        gevent.sleep(max(0.0, deadline - time.monotonic()))


def watching(pacing: Callable[[Any], float]) -> Callable[[Any], float]:
    """Locust's ``wait_time`` for an MQTT device: ``pacing``'s wait, spent watching the
    session (:meth:`MqttDevice.watch`); Locust then has nothing left to wait."""

    def wait_time(device: Any) -> float:
        device.watch(pacing(device))
        return 0.0

    return wait_time
