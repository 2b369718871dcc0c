"""One device's MQTT session: telemetry stored before its PUBACK, own topics only, closed when
its token expires."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket

from target.auth.verifier import AccessClaims
from target.errors import DatabaseUnavailable
from target.metrics import Metrics
from target.mqtt.gate import ConnectGate
from target.mqtt.streams import BoundedReader
from target.mqtt.topics import is_own_topic, telemetry_topic
from target.reading import InvalidReading, parse_reading
from target.store.telemetry import TelemetryLog

__all__ = ["DeviceHandler", "SessionRules"]


@dataclass(frozen=True)
class SessionRules:
    """What every device session shares: the gate (for revocation), the store, the metrics."""

    gate: ConnectGate
    telemetry: TelemetryLog
    metrics: Metrics


class DeviceHandler(BrokerProtocolHandler):
    """amqtt's broker-side protocol handler for one admitted device.

    amqtt's own QoS 1 flow queues an incoming message and PUBACKs it at once; here a reading on
    ``devices/{id}/telemetry`` is PUBACKed only once ``TelemetryLog.add`` has returned (with
    ``--telemetry-ack commit``: committed), so an acknowledged reading survives ``kill -9``.
    Readings are stored, not routed to subscribers; other own topics go through amqtt's flow.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grant: AccessClaims | None = None
        self.rules: SessionRules | None = None
        self.asked_keepalive = False
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    def admit(self, grant: AccessClaims, rules: SessionRules, asked_keepalive: bool) -> None:
        self.grant = grant
        self.rules = rules
        self.asked_keepalive = asked_keepalive

    def _honoured(self) -> bool:
        """Whether the session's grant still holds, by the gate's one rule (exp + leeway, the
        device still registered); if not, the session is closed, counted by why. The expiry
        timer lags when the loop is busy (a reconnect storm), so every PUBLISH and SUBSCRIBE
        asks too."""
        grant, rules = self.grant, self.rules
        if grant is None or rules is None:  # not admitted: cannot happen after CONNACK 0
            self.close("not_admitted")
            return False
        lapsed = rules.gate.lapsed(grant)
        if lapsed is None:
            return True
        self.close(lapsed)
        return False

    def _arm_expiry(self) -> None:
        """Cloud IoT Core's rule: a session lasts as long as its token (plus the leeway the
        HTTP API allows); the device renews and connects again."""
        grant, rules = self.grant, self.rules
        if grant is None or rules is None or self._closing is not None:
            return
        delay_s = max(0.0, rules.gate.closes_at(grant) - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay_s, self._expire)

    def _expire(self) -> None:
        # The loop's clock is not the wall clock exp is on: a timer that fires a little early
        # is armed again, so the close waits for the rule to say so and never goes missing.
        if self._honoured():
            self._arm_expiry()

    async def start(self) -> None:
        await super().start()
        if self._expiry is None:
            self._arm_expiry()

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if isinstance(self.reader, BoundedReader):
            self.reader.shut()
        await super().stop()

    def close(self, reason: str) -> None:
        """Close the connection (MQTT 3.1.1 has no server DISCONNECT), counted once by reason."""
        if self._closing is not None:
            return
        if self.rules is not None:
            self.rules.metrics.mqtt_sessions_closed.labels(reason=reason).inc()
        self._closing = asyncio.ensure_future(self.handle_connection_closed())

    def close_if_lapsed(self) -> None:
        """Close a connected session whose grant lapsed: its device revoked, deleted or
        registered again (or its token expired and the timer is late)."""
        session = self.session
        if self.grant is None or session is None or session.transitions.state != "connected":
            return
        self._honoured()

    async def handle_subscribe(self, subscribe: Any) -> None:
        if self._closing is None and self._honoured():
            await super().handle_subscribe(subscribe)

    def handle_read_timeout(self) -> None:
        # amqtt's broker handler ignores it; MQTT 3.1.1 §3.1.2.10 says close after 1.5 keepalives.
        self.close("keepalive" if self.asked_keepalive else "idle")

    async def handle_publish(self, publish_packet: Any) -> None:
        reader = self.reader
        if isinstance(reader, BoundedReader):
            reader.hold()
        try:
            await self._publish(publish_packet)
        finally:
            if isinstance(reader, BoundedReader):
                reader.release()

    async def _publish(self, packet: Any) -> None:
        if self._closing is not None:  # what the client sent after a refusal is not taken
            return
        if not self._honoured():  # expired or revoked since CONNECT: not one more message
            return
        grant, rules = self.grant, self.rules
        assert grant is not None and rules is not None  # admitted, or not honoured
        topic = packet.topic_name
        if topic is None or not is_own_topic(grant.sub, topic):
            # 3.1.1 has no negative PUBACK: close the connection, as AWS IoT Core does.
            rules.metrics.mqtt_acl_refusals.labels(action="publish").inc()
            self.close("acl")
            return
        if packet.retain_flag:  # retained messages would be memory any client could fill
            self.close("retain")
            return
        if topic != telemetry_topic(grant.sub):
            await super().handle_publish(packet)
            return
        try:
            reading = parse_reading(bytes(packet.data or b""))
        except InvalidReading:
            rules.metrics.mqtt_readings.labels(result="invalid").inc()
            self.close("invalid_reading")
            return
        try:
            await rules.telemetry.add(grant.sub, reading.seq, reading.ts, reading.values)
        except DatabaseUnavailable:
            # Not acknowledged: the client sends it again when it reconnects (clean session 0).
            rules.metrics.mqtt_readings.labels(result="unavailable").inc()
            self.close("unavailable")
            return
        qos = packet.qos
        if qos == 1:
            await self._send_packet(PubackPacket.build(packet.packet_id))
            rules.metrics.mqtt_readings.labels(result="acknowledged").inc()
        elif qos == 2:  # stored already: amqtt's QoS 2 handshake (PUBREC ... PUBCOMP) follows
            await super().handle_publish(packet)
            rules.metrics.mqtt_readings.labels(result="acknowledged").inc()
        else:
            rules.metrics.mqtt_readings.labels(result="stored_qos0").inc()
