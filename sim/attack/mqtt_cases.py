"""The corpus over MQTT: bad tokens as CONNECT credentials, and a genuine session's reach into
another device's topics; each judged from the broker's answer.

A CONNECT is judged by its CONNACK: 0 for a bad token is ``accepted`` (outcome
``accepted_invalid``, fatal), a code the profile names for bad credentials or not authorised is
``refused`` (``rejected_as_expected``), another refusal code or a connection closed before any
CONNACK is ``mismatch`` (refused, but not the documented way), a server-side code
``server_error``, no answer in time ``transport_error``. A genuine credential refused is
``refused_valid``. A topic reach is judged by what the broker did with it: a PUBLISH to
another device's topic that reaches that device's own subscriber, or a SUBSCRIBE the broker
grants, is ``accepted``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sim.attack.broker import MAX_PASSWORD_BYTES, BrokerAddress, BrokerSession, Connack
from sim.attack.listener import Listener
from sim.attack.signed import SignedCase, SignedContext
from sim.attack.verdicts import CaseResult, Severity, Verdict
from sim.corpus import CASES, Case, ForgeContext
from sim.errors import TargetUnusable
from sim.outcomes import Outcome
from sim.profiles.model import Mqtt
from sim.profiles.mqtt import credentials, topic

__all__ = [
    "MqttContext",
    "accepts",
    "acl_cases",
    "connect_case",
    "connect_result",
    "identity_cases",
    "judge_connack",
    "outcome_of",
    "play",
    "reading",
    "signed_case",
    "still_serving",
    "valid_connect",
]

# What a corpus case is over MQTT, where the HTTP wording does not fit.
_OVER_MQTT = {
    "other_device": "a genuine token with another registered device's id as username and client id"
}
# Cases that speak of HTTP only: a scope is an endpoint's rule, not a CONNECT's.
_HTTP_ONLY = frozenset({"scoped_token"})
# The client id refused (MQTT 3.1.1: 2, identifier rejected; MQTT 5: 0x85): a refusal too, of
# an identity that does not match the token (a broker may bind the client id to the device).
_ID_REJECTED = {"3.1.1": 2, "5": 0x85}
# The protocol refused (3.1.1: 1, unacceptable protocol version; MQTT 5: 0x84).
_UNSUPPORTED_PROTOCOL = {"3.1.1": 1, "5": 0x84}
# Refusal codes that say the server failed, not that it judged the credential.
_SERVER_CODES = {"3.1.1": frozenset({3}), "5": frozenset({0x80, 0x83, 0x88, 0x89})}
_OUTCOMES: dict[Verdict, Outcome] = {
    "accepted": "accepted_invalid",
    "refused": "rejected_as_expected",
    "mismatch": "rejected_as_expected",
    "server_error": "server_error",
    "transport_error": "transport_error",
    "valid": "ok",
    "refused_valid": "refused_valid",
}
# A broker that answered the genuine CONNECT, then leaves this many in a row unanswered, is
# not judging tokens any more: the attack stops rather than wait out every case.
_SILENT_IN_A_ROW = 3
_DELIVERY_WAIT_S = 0.5  # after a PUBACK: time for the broker to route the message on
_FORGED_IMPACT = "a forged token opens an MQTT session: anyone can connect as any device"
_ACL_IMPACT = "a device reads or writes another device's topics (broken object-level authorization)"
_IDENTITY_IMPACT = (
    "the broker does not bind the username to the token: a device connects as another"
)


def outcome_of(verdict: Verdict) -> Outcome | None:
    """The run's outcome a verdict stands for (None: none does: a skipped case, a finding graded
    by its severity, a key URL fetched)."""
    return _OUTCOMES.get(verdict)


@dataclass(frozen=True)
class MqttContext:
    """The broker, the profile's ``[mqtt]`` rules, and two devices with genuine tokens."""

    address: BrokerAddress
    mqtt: Mqtt
    device_id: str
    token: str
    other_device_id: str
    other_token: str | None  # None: no second device to subscribe as the victim

    def session(self, device_id: str, token: str | None) -> BrokerSession:
        c = credentials(self.mqtt, device_id, token)
        return BrokerSession(self.address, c.client_id, c.username, c.password)

    def connect_once(self, device_id: str, token: str | None) -> Connack:
        """One CONNECT as ``device_id`` presenting ``token``; the session closed after."""
        session = self.session(device_id, token)
        try:
            return session.connect()
        finally:
            session.close()

    def refusals(self) -> str:
        bad, denied = self.mqtt.refusal_codes()
        codes = {*bad, *denied, _ID_REJECTED[self.address.protocol]}
        return "|".join(str(code) for code in sorted(codes))


def judge_connack(ctx: MqttContext, connack: Connack) -> tuple[Verdict, str]:
    bad, denied = ctx.mqtt.refusal_codes()
    code = connack.code
    if code is None:
        closed = connack.error.startswith("connection closed")
        return ("mismatch" if closed else "transport_error"), connack.error
    if code == 0:
        return "accepted", "CONNACK 0 (session accepted)"
    if code in bad:
        return "refused", f"CONNACK {code} bad credentials"
    if code in denied:
        return "refused", f"CONNACK {code} not authorised"
    if code == _ID_REJECTED[ctx.address.protocol]:
        return "refused", f"CONNACK {code} client id rejected"
    if code in _SERVER_CODES[ctx.address.protocol]:
        return "server_error", f"CONNACK {code} (a server failure, not a judgement)"
    return "mismatch", f"CONNACK {code}"


def connect_result(
    name: str, family: str, description: str, expected: str, got: str, verdict: Verdict,
    severity: Severity = "", impact: str = "",
) -> CaseResult:  # fmt: skip
    graded = verdict in ("accepted", "finding", "fetched")
    return CaseResult(
        name, family, description, expected, got, verdict, 0, "", severity if graded else "",
        impact if graded else "", transport="mqtt", outcome=outcome_of(verdict),
    )  # fmt: skip


def valid_connect(ctx: MqttContext, connack: Connack) -> CaseResult:
    """The genuine token's CONNECT, the profile's way: CONNACK 0 expected (else
    ``refused_valid``)."""
    verdict, got = judge_connack(ctx, connack)
    if connack.accepted:
        verdict = "valid"
    elif verdict in ("refused", "mismatch"):
        verdict = "refused_valid"
    description = "the device's genuine token, its own username and client id"
    return connect_result("valid_connect", "control", description, "CONNACK 0", got, verdict)


def connect_case(
    ctx: MqttContext, case: Case, forge: ForgeContext, listener: Listener
) -> CaseResult:
    """One bearer corpus case as a CONNECT: its token as the credential, its device as the
    username (and client id)."""
    expected = f"CONNACK {ctx.refusals()}"

    def skipped(why: str) -> CaseResult:
        return connect_result(case.name, case.family, case.description, expected, why, "skipped")

    if case.needs & _HTTP_ONLY:
        return skipped("not sent: a scope is an HTTP endpoint's rule")
    if "public_key" in case.needs and forge.public_key is None:
        return skipped("not sent: the API publishes no public key")
    if "revoked_token" in case.needs and forge.revoked_token is None:
        return skipped("not sent: needs what only the fleetbench target gives")
    try:
        forged = case.forge(forge)
    except (ValueError, KeyError, TypeError, StopIteration) as e:
        return skipped(f"not forged: {type(e).__name__}")
    authorization = forged.authorization
    token = authorization
    if authorization is not None and authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ")
    if token == forge.token and forged.device_id == forge.device_id:
        return skipped("not sent: the API's token has nothing this forgery alters")
    if token is not None and len(token.encode()) > MAX_PASSWORD_BYTES:
        return skipped(f"not sent: longer than a CONNECT field holds ({MAX_PASSWORD_BYTES} bytes)")
    before = listener.count()
    verdict, got = judge_connack(ctx, ctx.connect_once(forged.device_id, token))
    severity: Severity = "critical" if case.name != "other_device" else "high"
    impact = _FORGED_IMPACT if case.name != "other_device" else _IDENTITY_IMPACT
    if listener.count() > before:
        verdict, got = "fetched", f"{got}, after fetching the key URL"
        severity, impact = "high", "the broker fetches keys from a URL the token names"
    description = _OVER_MQTT.get(case.name, case.description)
    return connect_result(
        case.name, case.family, description, expected, got, verdict, severity, impact
    )


def identity_cases(ctx: MqttContext) -> list[CaseResult]:
    """The genuine token under another identity: an unknown device's username must be refused;
    another device's client id (a session takeover: client ids are unique, so the broker drops
    the other device) is a finding when accepted."""
    expected = f"CONNACK {ctx.refusals()}"
    unknown = f"unknown-{secrets.token_hex(4)}"
    results = []
    if ctx.mqtt.token_in == "password":
        verdict, got = judge_connack(ctx, ctx.connect_once(unknown, ctx.token))
        results.append(
            connect_result(
                "mqtt_username_unknown_device", "identity",
                "the genuine token with a never registered device's id as the username",
                expected, got, verdict, "high", _IDENTITY_IMPACT,
            )
        )  # fmt: skip
    c = credentials(ctx.mqtt, ctx.device_id, ctx.token)
    other_client = credentials(ctx.mqtt, ctx.other_device_id, None).client_id
    if other_client != c.client_id:
        session = BrokerSession(ctx.address, other_client, c.username, c.password)
        try:
            verdict, got = judge_connack(ctx, session.connect())
        finally:
            session.close()
        results.append(
            connect_result(
                "mqtt_client_id_other_device", "identity",
                "the genuine token and username with another device's client id",
                f"{expected} (or a finding)", got, "finding" if verdict == "accepted" else verdict,
                "high",
                "a device takes over another device's MQTT session: the broker drops the other",
            )
        )  # fmt: skip
    return results


def reading(seq: int) -> bytes:
    """A telemetry reading as the devices send it (a broker that checks readings takes it)."""
    return json.dumps({"seq": seq, "ts": time.time(), "values": {"temp_c": 21.5}}).encode()


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


def play(
    ctx: MqttContext, forge: ForgeContext, listener: Listener,
    record: Callable[[CaseResult], None],
) -> None:  # fmt: skip
    """Every MQTT case: the genuine CONNECT first (a broker that does not answer it stops the
    attack in one line), then the corpus as CONNECTs, the identity and the topic cases."""
    connack = ctx.connect_once(ctx.device_id, ctx.token)
    protocol = ctx.address.protocol
    if connack.code == _UNSUPPORTED_PROTOCOL[protocol]:
        raise TargetUnusable(
            f"the MQTT broker at {ctx.address} does not speak MQTT {protocol} (CONNACK "
            f"{connack.code}): set [mqtt] protocol in the profile"
        )
    control = valid_connect(ctx, connack)
    if control.verdict == "transport_error":
        raise TargetUnusable(f"the MQTT broker at {ctx.address}: {control.got}")
    record(control)
    silent = 0  # CONNECTs in a row with no answer: a broker that stopped answering
    for case in CASES:
        result = connect_case(ctx, case, forge, listener)
        record(result)
        silent = silent + 1 if result.verdict == "transport_error" else 0
        if silent == _SILENT_IN_A_ROW:
            raise TargetUnusable(
                f"the MQTT broker at {ctx.address} stopped answering: {silent} CONNECTs in a "
                f"row without a CONNACK (the last: {result.got})"
            )
    for result in identity_cases(ctx):
        record(result)
    acl_cases(ctx, record)


def still_serving(ctx: MqttContext, token: str) -> bool:
    """A fresh genuine token still opens a session after the corpus."""
    return ctx.connect_once(ctx.device_id, token).accepted


def accepts(ctx: MqttContext, device_id: str, token: str) -> bool:
    """Whether ``token`` opens a session as ``device_id``."""
    return ctx.connect_once(device_id, token).accepted


def signed_case(ctx: MqttContext, case: SignedCase, signed: SignedContext) -> CaseResult:
    """A correctly signed token that breaks one rule, as a CONNECT (:mod:`sim.attack.signed`)."""
    expected = f"CONNACK {ctx.refusals()}"
    built = case.build(signed)
    if built is None:
        why = f"not sent: a {signed.profile.token.alg} key signs under no other alg"
        return connect_result(case.name, "signed", case.description, expected, why, "skipped")
    verdict, got = judge_connack(ctx, ctx.connect_once(built.device_id, built.token))
    if verdict == "accepted" and not case.fails:
        verdict = "finding"
    return connect_result(
        case.name, "signed", case.description, expected, got, verdict,
        case.severity(signed.profile), case.impact,
    )  # fmt: skip
