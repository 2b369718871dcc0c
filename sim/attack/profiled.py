"""``fleetbench attack`` through a target profile other than our own.

The attack device is set up the way ``probe`` sets up its own (:mod:`sim.probe`): registered the
profile's way, its genuine token from the API's token call or minted with the profile's key. Then:

1. the bearer corpus (:mod:`sim.corpus`), each forged token presented the profile's way (its
   header and format, or its query parameter) on the profile's endpoint (one whose path names
   ``{device_id}`` if any). The token-endpoint corpus speaks our OAuth contract and is not sent;
   cases that need what only our target gives (a revoked device, a narrower scope) are skipped;
2. for an API that issues tokens, its own token call with credentials that must get no token,
   and (with a refresh call) the access and refresh tokens each sent where the other goes;
3. with the profile's signing key (minted tokens), correctly signed tokens that break one rule at
   a time (:mod:`sim.attack.signed`);
4. for an HMAC key, the common-secrets check: the profile's own secret, or the API's, cracked
   offline from a genuine token. A common secret is named and its use is shown: a token minted
   with it for a device id of the attacker's choosing, sent to the API.

A foreign API need not say why it refuses (403 for everything is common), so a refusal is a
refusal: any 4xx passes, and the profile's class of it is reported beside the status. A 2xx to a
bad token fails, graded by severity.
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from jwt import warnings as jwt_warnings

from sim.attack import mqtt_cases
from sim.attack.broker import BrokerAddress
from sim.attack.cases import WEAK_SECRET_IMPACT, secret_strength
from sim.attack.listener import Listener, listening
from sim.attack.mqtt_cases import MqttContext
from sim.attack.session import AttackSession, token_alg
from sim.attack.signed import SIGNED_CASES, SignedCase, SignedContext, sign_with
from sim.attack.topic_acl import acl_cases
from sim.attack.verdicts import AttackReport, CaseResult, Severity, Verdict
from sim.corpus import (
    CASES,
    Case,
    ForgeContext,
    common_secret_index,
    common_secret_name,
    common_secrets,
    find_common_secret,
)
from sim.corpus.forging import token_parts
from sim.errors import TargetUnusable
from sim.probe import (
    ProbeConfig,
    ProfileLines,
    Unusable,
    genuine_token,
    probe_endpoint,
    probe_pair,
    request_values,
    signing_key,
)
from sim.profiles.http import (
    Request,
    classify,
    endpoint_request,
    expected_classes,
    read_token,
    refresh_request,
    token_request,
)
from sim.profiles.model import Endpoint, Profile
from sim.untrusted import Answer
from target.jose.vocabulary import ALG_NAMES

__all__ = ["attack_profile"]

# Cases that need what only our own target gives an attacker.
_OUR_TARGET_ONLY = frozenset({"revoked_token", "scoped_token"})
_FORGED_IMPACT = "a forged token is honoured: anyone can get in without the key"
_OTHER_DEVICE_IMPACT = (
    "a device reads or writes another device's data (broken object-level authorization)"
)
# PyJWT warns when it signs with an HMAC key shorter than the hash (newer versions only).
_SHORT_KEY_WARNING: type[Warning] = getattr(jwt_warnings, "InsecureKeyLengthWarning", UserWarning)
_FETCHED_IMPACT = "the API fetches keys from a URL the token names: the attacker picks the key"


class _Target:
    """The profile's endpoint on the target: one request each, judged by status."""

    def __init__(self, profile: Profile, session: AttackSession, values: dict[str, Any]) -> None:
        self.profile = profile
        self.session = session
        self.endpoint: Endpoint = probe_endpoint(profile)
        self.values = values

    def send(self, request: Request) -> tuple[int, Answer | None]:
        return self.session.send(
            request.method, request.path, headers=request.headers, data=request.body
        )

    def request(self, device_id: str, token: str | None, raw: str | None = None) -> Request:
        """``token`` presented the profile's way; ``raw``: this exact header value instead."""
        values = {**self.values, "device_id": device_id}
        request = endpoint_request(self.profile, self.endpoint, values, token)
        if raw is not None:
            request = Request(
                request.method, request.path, {**request.headers, self.profile.present.header: raw},
                request.body,
            )  # fmt: skip
        return request

    def answer(self, request: Request) -> tuple[int, str, Verdict]:
        """(status, the profile's class of the answer, verdict): any 4xx is a refusal."""
        status, response = self.send(request)
        if response is None:
            return 0, "no answer", "transport_error"
        if status >= 500:
            return status, f"http_{status}", "server_error"
        if status in self.endpoint.ok or 200 <= status < 300:
            return status, "ok", "accepted"
        reason = classify(self.profile, status, response.headers, response.text[:4096])
        return status, reason, "refused" if 400 <= status < 500 else "mismatch"

    def accepts(self, device_id: str, token: str) -> bool:
        return self.answer(self.request(device_id, token))[2] == "accepted"


def _expected_class(case: Case) -> str:
    return "|".join(expected_classes(case.expected_reasons))


def _corpus_case(target: _Target, case: Case, ctx: ForgeContext, listener: Listener) -> CaseResult:
    expected = f"4xx {_expected_class(case)}"

    def skipped(why: str) -> CaseResult:
        return CaseResult(case.name, case.family, case.description, expected, why, "skipped")

    if case.needs & _OUR_TARGET_ONLY:
        return skipped("not sent: needs what only the fleetbench target gives")
    if case.needs_device_path and "{device_id}" not in target.endpoint.path:
        return skipped(f"not sent: the {target.endpoint.name} path names no device")
    if "public_key" in case.needs and ctx.public_key is None:
        return skipped("not sent: the API publishes no public key")
    try:
        forged = case.forge(ctx)
    except (ValueError, KeyError, TypeError, StopIteration) as e:
        return skipped(f"not forged: {type(e).__name__}")  # the token lacks what this alters
    authorization = forged.authorization
    if authorization is not None and authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ")
        if token == ctx.token and forged.device_id == ctx.device_id:
            # Removing a claim or header the API's tokens never had: the genuine token again.
            return skipped("not sent: the API's token has nothing this forgery alters")
        request = target.request(forged.device_id, token)
    elif authorization is None:
        request = target.request(forged.device_id, None)
    elif target.profile.present.query:
        return skipped("not sent: the profile presents the token as a query parameter")
    else:  # another scheme, or none: the header value as the corpus wrote it
        request = target.request(forged.device_id, None, raw=authorization)
    before = listener.count()
    status, reason, verdict = target.answer(request)
    got = f"{status} {reason}" if status else "no HTTP answer"
    if verdict == "transport_error" and case.family == "size":
        # A server that closes the connection on an oversized header (Node answers 431 and
        # hangs up while the client still sends) has not accepted it; still_serving checks
        # that it lives on.
        verdict, got = "refused", "connection closed by the API before an answer"
    severity: Severity = ""
    impact = ""
    if verdict == "accepted":
        other = case.name == "other_device"
        severity = "high" if other else "critical"
        impact = _OTHER_DEVICE_IMPACT if other else _FORGED_IMPACT
    if listener.count() > before:
        verdict, got = "fetched", f"{got}, after fetching the key URL"
        severity, impact = "high", _FETCHED_IMPACT
    return CaseResult(
        case.name, case.family, case.description, expected, got, verdict, status, reason,
        severity, impact,
    )  # fmt: skip


def _signed_case(target: _Target, case: SignedCase, ctx: SignedContext) -> CaseResult:
    expected = "4xx (refused)"
    built = case.build(ctx)
    if built is None:
        why = f"not sent: a {ctx.profile.token.alg} key signs under no other alg"
        return CaseResult(case.name, "signed", case.description, expected, why, "skipped")
    status, reason, verdict = target.answer(target.request(built.device_id, built.token))
    got = f"{status} {reason}" if status else "no HTTP answer"
    severity: Severity = ""
    impact = ""
    if verdict == "accepted":
        severity, impact = case.severity(ctx.profile), case.impact
        verdict = "accepted" if case.fails else "finding"
    return CaseResult(
        case.name, "signed", case.description, expected, got, verdict, status, reason,
        severity, impact,
    )  # fmt: skip


def _weak_secret(
    accepts: Callable[[str, str], bool], profile: Profile, token: str, alg: str, device_id: str
) -> CaseResult | None:
    """The common-secrets check of an HMAC key (None: no HMAC), with its use shown."""
    if profile.minted and profile.token.alg.startswith("HS") and profile.token.secret:
        index = common_secret_index(profile.token.secret)
    elif alg.startswith("HS"):
        index = find_common_secret(token)
    else:
        return None
    if index is None:
        return secret_strength(token, alg)
    stranger = f"any-device-{secrets.token_hex(3)}"
    header, claims, _ = token_parts(token)
    # The attacker's token: the genuine claims with the device's id swapped for one it picks.
    claims = {k: stranger if v == device_id else v for k, v in claims.items()}
    claims["exp"] = int(time.time()) + 3600
    header = {k: v for k, v in header.items() if k not in ("alg", "typ")}
    forged = sign_with(common_secrets()[index], alg, claims, header)
    accepted = accepts(stranger, forged)
    impact = (
        f"anyone can mint a token for any device id, e.g. {json.dumps(claims)} signed with "
        f"{common_secret_name(index)}: the API {'ACCEPTED' if accepted else 'refused'} it "
        f"({WEAK_SECRET_IMPACT})"
    )
    return secret_strength(token, alg, index, impact)


# -- the API's own token call ---------------------------------------------------------------------

_LOGIN_IMPACT = "the API hands out a token for a wrong credential: anyone can act as any device"
_LOGIN_CASES = (
    ("login_wrong_secret", "the device's id with a wrong secret"),
    ("login_empty_secret", "the device's id with an empty secret"),
    ("login_unknown_device", "an id never registered, with a random secret"),
    ("login_other_device", "another registered device's id with this device's secret"),
)

_REFRESH_CASES = (
    ("refresh_with_access_token", "the access token sent to the refresh call"),
    ("refresh_token_as_access", "the refresh token presented as an access token"),
)


def _json_body(response: Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _token_call(
    target: _Target, request: Request, *, refreshed: bool = False
) -> tuple[int, str, Verdict]:
    """(status, what came, verdict) of a token or refresh call that must hand out no token."""
    status, response = target.send(request)
    if response is None:
        return 0, "no HTTP answer", "transport_error"
    if status >= 500:
        return status, f"{status}", "server_error"
    answer = read_token(
        target.profile, response.headers, _json_body(response), time.time(), refreshed=refreshed
    )
    if answer is not None and status < 400:
        return status, f"{status} with a token", "accepted"
    if 400 <= status < 500:
        return status, f"{status}", "refused"
    return status, f"{status} without a token", "mismatch"


def _uses_secret(profile: Profile) -> bool:
    spec = profile.token
    template = spec.form if spec.form is not None else spec.json
    return template is not None and "{secret}" in json.dumps(template)


def _token_call_cases(target: _Target, device_secret: str, other_id: str) -> list[CaseResult]:
    """The profile's token call with credentials that must get no token; with a refresh call,
    each of the pair where the other belongs (token-type confusion)."""
    profile = target.profile
    results: list[CaseResult] = []
    expected = "4xx, no token"

    def result(
        name: str, description: str, answer: tuple[int, str, Verdict], severity: Severity,
        impact: str,
    ) -> CaseResult:  # fmt: skip
        status, got, verdict = answer
        graded = verdict == "accepted"
        return CaseResult(
            name, "token_call", description, expected, got, verdict, status, "",
            severity if graded else "", impact if graded else "",
        )  # fmt: skip

    if _uses_secret(profile):
        own = target.values["device_id"]
        credentials = {
            "login_wrong_secret": (own, f"wrong-{secrets.token_hex(8)}"),
            "login_empty_secret": (own, ""),
            "login_unknown_device": (f"unknown-{secrets.token_hex(4)}", secrets.token_hex(8)),
            "login_other_device": (other_id, device_secret),
        }
        for name, description in _LOGIN_CASES:
            device_id, secret = credentials[name]
            values = {**target.values, "device_id": device_id, "secret": secret}
            request = token_request(profile, values, assertion=False)
            answer = _token_call(target, request)
            results.append(result(name, description, answer, "critical", _LOGIN_IMPACT))
    if profile.token.refresh is None:
        return results
    # A fresh pair: the genuine access token may be near its end by now.
    status, response = target.send(token_request(profile, target.values, assertion=False))
    pair = (
        read_token(profile, response.headers, _json_body(response), time.time())
        if response is not None and status in profile.token.ok
        else None
    )
    if pair is None or pair.refresh_token is None:
        why = "not sent: the token call gave no refresh token"
        for name, description in _REFRESH_CASES:
            results.append(CaseResult(name, "token_call", description, expected, why, "skipped"))
        return results
    (access_name, access_what), (refresh_name, refresh_what) = _REFRESH_CASES
    request = refresh_request(profile, {**target.values, "refresh_token": pair.token})
    results.append(
        result(
            access_name, access_what, _token_call(target, request, refreshed=True), "high",
            "an access token renews itself: a leaked one never lapses",
        )
    )  # fmt: skip
    status, reason, verdict = target.answer(
        target.request(str(target.values["device_id"]), pair.refresh_token)
    )
    results.append(
        result(
            refresh_name, refresh_what, (status, f"{status} {reason}", verdict), "medium",
            "the long-lived refresh token opens the API's endpoints too",
        )
    )  # fmt: skip
    return results


_HASH_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _short_secret(profile: Profile) -> CaseResult | None:
    """A profile's HMAC secret shorter than its hash (RFC 7518 3.2 asks for at least as many
    bytes): a finding, its length given, the secret never. None: no HMAC secret in hand."""
    token = profile.token
    size = _HASH_BYTES.get(token.alg)
    if not (profile.minted and token.secret and size):
        return None
    length = len(token.secret.encode())
    short = length < size
    return CaseResult(
        "short_hmac_secret",
        "secret_strength",
        f"the profile's {token.alg} secret is at least {size} bytes (RFC 7518 3.2)",
        f">= {size} bytes",
        f"{length} bytes",
        "finding" if short else "refused",
        severity="medium" if short else "",
        impact=(
            f"a {length}-byte key for {token.alg} (RFC 7518 3.2 asks for {size}): an offline "
            "brute force of one captured token is cheaper the shorter it is"
            if short
            else ""
        ),
    )


def attack_profile(
    profile: Profile,
    url: str,
    admin_key: str | None,
    *,
    on_result: Callable[[CaseResult], None] = lambda result: None,
    broker: BrokerAddress | None = None,
) -> AttackReport:
    """The corpus (and, with the profile's key, the signed cases) against ``url``; with
    ``broker``, as CONNECTs to that MQTT broker (the API at ``url`` issues the tokens)."""
    started = time.monotonic()
    session = AttackSession(url)
    config = ProbeConfig(profile, url, admin_key)
    lines = ProfileLines(profile)

    def send(request: Request) -> Answer:
        _, response = session.send(
            request.method, request.path, headers=request.headers, data=request.body
        )
        if response is None:
            raise TargetUnusable(f"no answer from {url} to {request!r}")
        return response

    def token_for(device: Any) -> str:
        with warnings.catch_warnings():  # a short HMAC key: reported by the attack itself
            warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
            return genuine_token(config, device, send, lines)[0]

    try:
        try:
            device, other = probe_pair(config, lines)
            token = token_for(device)
        except Unusable as e:
            raise TargetUnusable(f"profile {profile.name}: {e.step.fix}") from None
        other_id = other.id if other is not None else device.id + "x"
        values = request_values(profile, device, other_id)
        target = _Target(profile, session, values)
        accepts: Callable[[str, str], bool] = target.accepts
        mqtt_ctx: MqttContext | None = None
        if broker is not None:  # the broker's CONNACK to it is the first MQTT case
            try:
                other_token = token_for(other) if other is not None else None
            except Unusable:
                other_token = None
            mqtt_ctx = MqttContext(broker, profile.mqtt, device.id, token, other_id, other_token)
            accepts = partial(mqtt_cases.accepts, mqtt_ctx)
        else:
            status, _, verdict = target.answer(target.request(device.id, token))
            if verdict != "accepted":
                raise TargetUnusable(
                    f"the API refused the attack device's genuine token ({status}): nothing a "
                    f"refusal shows is meaningful; check the profile with fleetbench probe"
                )
        alg = token_alg(token) if token.count(".") == 2 else "opaque"
        report = AttackReport(
            url, False, alg, profile=profile.name, broker=str(broker) if broker else ""
        )

        def record(result: CaseResult) -> None:
            report.results.append(result)
            on_result(result)

        key: Any = signing_key(profile) if profile.minted else None
        # A private key's public half: the HS256-signed-with-the-public-key cases apply.
        public_key = key.public_key() if hasattr(key, "public_key") else None
        with listening(alg if alg in ALG_NAMES else "ES256") as listener:
            ctx = ForgeContext(
                token, alg, device.id, other_id, public_key=public_key,
                listener_url=listener.url,
            )  # fmt: skip
            if mqtt_ctx is not None:
                mqtt_cases.play(mqtt_ctx, ctx, listener, record)
                acl_cases(mqtt_ctx, record)
            else:
                for case in CASES:
                    record(_corpus_case(target, case, ctx, listener))
            if key is not None:
                signed = SignedContext(profile, key, values)
                for signed_case in SIGNED_CASES:
                    if mqtt_ctx is not None:
                        record(mqtt_cases.signed_case(mqtt_ctx, signed_case, signed))
                    else:
                        record(_signed_case(target, signed_case, signed))
            if not profile.minted and mqtt_ctx is None:
                for result in _token_call_cases(target, device.secret, other_id):
                    record(result)
            weak = _weak_secret(accepts, profile, token, alg, device.id)
            if weak is not None:
                record(weak)
            short = _short_secret(profile)
            if short is not None:
                record(short)
            time.sleep(0.2)  # a fetch the target made in the background still counts
            report.listener_requests = listener.count()
        try:  # a fresh genuine token still works after the corpus
            report.still_serving = accepts(device.id, token_for(device))
        except (Unusable, TargetUnusable):
            report.still_serving = False
    finally:
        session.close()
    report.elapsed_s = time.monotonic() - started
    return report
