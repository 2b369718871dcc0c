"""The corpus over MQTT: bad tokens as CONNECT credentials, judged from the broker's CONNACK;
and what every MQTT case shares (the context, the CONNACK's judgement, a case's result).

A CONNECT is judged by its CONNACK: 0 for a bad token is ``accepted`` (outcome
``accepted_invalid``, fatal), a code the profile names for bad credentials or not authorised is
``refused`` (``rejected_as_expected``), another refusal code or a connection closed before any
CONNACK is ``mismatch`` (refused, but not the documented way), a server-side code
``server_error``, no answer in time ``transport_error``. A genuine credential refused is
``refused_valid``. The topic cases are :mod:`sim.attack.topic_acl`.
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
from sim.profiles.mqtt import credentials

__all__ = [
    "MqttContext",
    "accepts",
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
_FORGED_IMPACT = "a forged token opens an MQTT session: anyone can connect as any device"
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


def play(
    ctx: MqttContext, forge: ForgeContext, listener: Listener,
    record: Callable[[CaseResult], None],
) -> None:  # fmt: skip
    """The CONNECT cases: the genuine one first (a broker that does not answer it stops the
    attack in one line), then the corpus as CONNECTs and the identity cases. The topic cases
    follow (:mod:`sim.attack.topic_acl`)."""
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
