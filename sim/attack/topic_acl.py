"""A genuine session's reach into another device's topics, judged by where the message lands.

The other device, when there is one, holds a session subscribed to its own topic: a PUBLISH to
that topic that reaches it, or a SUBSCRIBE the broker grants through which the other device's
next reading comes, is ``accepted`` (``accepted_invalid``). A connection closed on the PUBLISH
(as MQTT 3.1.1 brokers refuse) or a PUBACK/SUBACK >= 0x80 is ``refused``; a PUBACK or a granted
SUBACK with nothing delivered is ``mismatch`` (the broker's word and its deed differ). A
session's own topic is the control: refused there is ``refused_valid``.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.attack.broker import BrokerSession
from sim.attack.mqtt_cases import MqttContext, connect_result, reading
from sim.attack.verdicts import CaseResult, Verdict
from sim.profiles.mqtt import topic

__all__ = ["acl_cases"]

_DELIVERY_WAIT_S = 0.5  # after a PUBACK: time for the broker to route the message on
_ACL_IMPACT = "a device reads or writes another device's topics (broken object-level authorization)"


def _delivered(victim: BrokerSession | None, topic_name: str) -> bool:
    if victim is None:
        return False
    victim.wait(_DELIVERY_WAIT_S)
    return topic_name in victim.received


def _publish_other(
    ctx: MqttContext, attacker: BrokerSession, victim: BrokerSession | None, qos: int
) -> CaseResult:
    name = topic(ctx.mqtt.acl_topic, ctx.device_id, ctx.other_device_id)
    answer = attacker.publish(name, reading(0), qos)
    delivered = _delivered(victim, name)
    if delivered:
        verdict: Verdict = "accepted"
        got = "delivered to the other device's subscriber"
    elif answer.closed:
        verdict, got = "refused", "connection closed on the PUBLISH"
    elif answer.codes and answer.codes[0] >= 0x80:
        verdict, got = "refused", f"PUBACK {answer.codes[0]:#04x}"
    elif victim is None:  # nothing to see a delivery with: the broker's answer is all there is
        verdict = "accepted" if answer.answered else "mismatch"
        got = "PUBACK (no second device to see where it went)" if answer.answered else "no PUBACK"
    else:
        verdict = "mismatch"
        got = "PUBACK, not delivered (dropped)" if answer.answered else "no PUBACK, not delivered"
    return connect_result(
        "acl_publish_other_device", "acl",
        f"a genuine session publishes (QoS {qos}) to another device's topic {name}",
        "closed|PUBACK>=0x80, undelivered", got, verdict, "high",
        _ACL_IMPACT,
    )  # fmt: skip


def _subscribe(
    ctx: MqttContext, attacker: BrokerSession, victim: BrokerSession | None, name: str,
    case: str, description: str, qos: int,
) -> CaseResult:  # fmt: skip
    answer = attacker.subscribe(name, qos)
    expected = "SUBACK >= 0x80"
    if answer.closed:
        verdict: Verdict = "mismatch"
        got = "connection closed on the SUBSCRIBE"
    elif not answer.answered:
        verdict, got = "mismatch", "no SUBACK"
    elif all(code >= 0x80 for code in answer.codes):
        verdict, got = "refused", f"SUBACK {answer.codes[0]:#04x}"
    elif victim is None or not victim.open:  # nothing to see a delivery with
        verdict, got = "accepted", f"SUBACK granted QoS {answer.codes[0]}"
    else:  # granted: does the other device's own reading come through?
        own = topic(ctx.mqtt.telemetry_topic, ctx.other_device_id)
        victim.publish(own, reading(1), qos)
        attacker.wait(_DELIVERY_WAIT_S)
        if own in attacker.received:
            verdict = "accepted"
            got = f"SUBACK granted QoS {answer.codes[0]}, the other device's reading came through"
        else:
            verdict = "mismatch"
            got = f"SUBACK granted QoS {answer.codes[0]}, nothing delivered"
    return connect_result(case, "acl", description, expected, got, verdict, "high", _ACL_IMPACT)


def acl_cases(ctx: MqttContext, record: Callable[[CaseResult], None]) -> None:
    """A genuine session's own topic (control), then another device's: publish, subscribe, and
    a wildcard over every device's telemetry. The other device, when there is one, holds a
    session subscribed to its own topic, so a delivery is seen where it lands."""
    qos = ctx.mqtt.qos
    victim: BrokerSession | None = None
    if ctx.other_token is not None:
        victim = ctx.session(ctx.other_device_id, ctx.other_token)
        if victim.connect().accepted:
            victim.subscribe(
                topic(ctx.mqtt.acl_topic, ctx.other_device_id, ctx.other_device_id), qos
            )
        else:
            victim.close()
            victim = None
    sessions: list[BrokerSession] = []

    def attacker() -> BrokerSession | None:
        """A fresh genuine session (a refused publish may close the last one)."""
        session = ctx.session(ctx.device_id, ctx.token)
        sessions.append(session)
        return session if session.connect().accepted else None

    try:
        own = attacker()
        own_topic = topic(ctx.mqtt.telemetry_topic, ctx.device_id)
        answer = own.publish(own_topic, reading(0), qos) if own else None
        refused_own = (
            answer is None or answer.closed or not answer.answered or answer.codes[0] >= 0x80
        )
        got = "no session" if answer is None else "refused" if refused_own else "PUBACK"
        record(
            connect_result(
                "valid_publish_own_topic", "control",
                f"a genuine session publishes (QoS {qos}) to its own topic {own_topic}",
                "PUBACK" if qos else "connection kept", got,
                "refused_valid" if refused_own else "valid",
            )
        )  # fmt: skip
        session = attacker()
        if session is None:
            return
        record(_publish_other(ctx, session, victim, qos))
        session = attacker()
        if session is None:
            return
        name = topic(ctx.mqtt.acl_topic, ctx.device_id, ctx.other_device_id)
        description = f"a genuine session subscribes to another device's topic {name}"
        record(
            _subscribe(ctx, session, victim, name, "acl_subscribe_other_device", description, qos)
        )
        session = attacker()
        if session is None:
            return
        wildcard = topic(ctx.mqtt.telemetry_topic, "+")
        description = f"a genuine session subscribes to every device's telemetry, {wildcard}"
        record(
            _subscribe(ctx, session, victim, wildcard, "acl_subscribe_wildcard", description, qos)
        )
    finally:
        for open_session in sessions:
            open_session.close()
        if victim is not None:
            victim.close()
