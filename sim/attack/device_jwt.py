"""Device-signed JWTs as CONNECT passwords (the Cloud IoT Core design our broker also takes):
each signed by an attack device's own registered key, so the signature holds and only the rule
it breaks can refuse it.

The control (``device_jwt_valid``: ``iss`` = ``sub`` = the device, the API's audience, five
minutes) must open a session; every other case must be refused: the same JWT again (its
``jti`` is single-use), an expired one, one made for the token endpoint's audience, one
claiming another device, an unsigned one, one that lives a month, one of a revoked device;
and a session whose JWT lives two seconds must be closed once its ``exp`` and the leeway pass.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.attack.broker import BrokerSession
from sim.attack.mqtt_cases import MqttContext, connect_result, judge_connack, reading
from sim.attack.verdicts import CaseResult, Verdict
from sim.corpus.forging import compact, sign_jws
from sim.fleet.model import Device
from sim.outcomes import CLOCK_SLOP_S
from sim.profiles.mqtt import topic

__all__ = ["DeviceJwtContext", "device_jwt_cases"]

_LIFETIME_S = 300
_PAST_S = 7200  # well past the exp of any leeway a broker allows
_SHORT_LIFETIME_S = 2.0  # session_outlives_token: the JWT runs out while the other cases run
_IMPACT = "a device-signed JWT that breaks a rule opens a session"


@dataclass(frozen=True)
class DeviceJwtContext:
    """Who signs (the attack's devices, with keys the target registered) and for whom."""

    device: Device
    other: Device
    revoked: Device
    audience: str  # the API's: what a CONNECT password is made for
    issuer: str  # the token endpoint's: what an assertion is made for
    leeway_s: float  # how long past exp the broker may keep a session (the profile's)


def _signed(device: Device, claims: dict[str, Any]) -> str:
    alg = device.alg or "ES256"
    return sign_jws(alg, device.private_key(), {"alg": alg, "typ": "JWT"}, claims)


def _claims(ctx: DeviceJwtContext, device: Device, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": device.id, "sub": device.id, "aud": ctx.audience, "iat": now,
        "exp": now + _LIFETIME_S, "jti": secrets.token_urlsafe(16),
    }  # fmt: skip
    return {**claims, **changes}


def _cases(ctx: DeviceJwtContext) -> list[tuple[str, str, str, str]]:
    """(name, description, username, password) of each case that must be refused."""
    device, past = ctx.device, int(time.time()) - _PAST_S
    unsigned = compact({"alg": "none", "typ": "JWT"}, _claims(ctx, device), "")
    return [
        (
            "device_jwt_expired", "exp two hours past (beyond any leeway)", device.id,
            _signed(device, _claims(ctx, device, iat=past - _LIFETIME_S, exp=past)),
        ),
        (
            "device_jwt_token_endpoint_audience", "made for the token endpoint (aud = issuer)",
            device.id, _signed(device, _claims(ctx, device, aud=ctx.issuer)),
        ),
        (
            "device_jwt_other_device", "claims another device (iss = sub = it), our key",
            ctx.other.id, _signed(device, _claims(ctx, ctx.other)),
        ),
        ("device_jwt_alg_none", "alg none, unsigned", device.id, unsigned),
        (
            "device_jwt_month_long", "exp thirty days after iat", device.id,
            _signed(device, _claims(ctx, device, exp=int(time.time()) + 30 * 86_400)),
        ),
        (
            "device_jwt_revoked_device", "a revoked device's own, correctly signed",
            ctx.revoked.id, _signed(ctx.revoked, _claims(ctx, ctx.revoked)),
        ),
    ]  # fmt: skip


def device_jwt_cases(
    mqtt: MqttContext, ctx: DeviceJwtContext, record: Callable[[CaseResult], None]
) -> None:
    """The control, the replay of the control's JWT, then the rule-breakers."""
    family = "device_jwt"
    expected = f"CONNACK {mqtt.refusals()}"
    password = _signed(ctx.device, _claims(ctx, ctx.device))
    first = mqtt.connect_once(ctx.device.id, password)
    verdict, got = judge_connack(mqtt, first)
    control: Verdict = "valid" if first.accepted else "refused_valid"
    if verdict == "transport_error":
        control = verdict
    description = "signed by the device's own key: iss = sub = the device, the API's audience"
    record(connect_result("device_jwt_valid", family, description, "CONNACK 0", got, control))
    description = "the control's JWT again: its jti is spent"
    if first.accepted:
        verdict, got = judge_connack(mqtt, mqtt.connect_once(ctx.device.id, password))
    else:  # a refused first use: the replay proves nothing
        verdict, got = "skipped", "not sent: the first use was refused"
    record(connect_result("device_jwt_replayed", family, description, expected, got, verdict))
    # Opened now, judged last: the other cases run while its token runs out.
    short_exp = time.time() + _SHORT_LIFETIME_S
    claims = _claims(ctx, ctx.device, exp=int(short_exp) + 1)
    short = mqtt.session(ctx.device.id, _signed(ctx.device, claims))
    try:
        opened = short.connect().accepted
        for name, description, username, token in _cases(ctx):
            verdict, got = judge_connack(mqtt, mqtt.connect_once(username, token))
            record(
                connect_result(name, family, description, expected, got, verdict, "high", _IMPACT)
            )
        record(_outlives(mqtt, short if opened else None, int(short_exp) + 1, ctx.leeway_s))
    finally:
        short.close()


def _outlives(
    mqtt: MqttContext, session: BrokerSession | None, exp: float, leeway_s: float
) -> CaseResult:
    """Whether the broker closes a session once its token's ``exp`` (plus its leeway) passed,
    as the Cloud IoT Core design does: a session open past it is a token honoured after it
    expired (or after its device was revoked)."""
    name = "session_outlives_token"
    description = f"a session whose device JWT lives {_SHORT_LIFETIME_S:g} s, {leeway_s:g} s leeway"
    expected = "closed by exp + leeway"
    if session is None:
        why = "not sent: the short-lived JWT was refused"
        return connect_result(name, "device_jwt", description, expected, why, "skipped")
    deadline = exp + leeway_s + CLOCK_SLOP_S
    session.wait(max(deadline - time.time(), 0.0))
    if not session.open:
        got = f"closed by {time.time() - exp:.0f} s after exp"
        return connect_result(name, "device_jwt", description, expected, got, "refused")
    answer = session.publish(
        topic(mqtt.mqtt.telemetry_topic, mqtt.device_id), reading(2), mqtt.mqtt.qos
    )
    got = f"still open {time.time() - exp:.0f} s after exp" + (
        ", and its PUBLISH was acknowledged" if answer.answered and answer.codes[0] < 0x80 else ""
    )
    return connect_result(
        name, "device_jwt", description, expected, got, "accepted", "high",
        "a session outlives its token: an expired (or revoked) device keeps publishing",
    )  # fmt: skip
