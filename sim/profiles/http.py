"""The Locust-free half of talking to an API through a profile: build each request (token,
protected endpoint), read a token answer, mint a token, classify a refusal, judge an answer.

No I/O: the caller (FleetDevice under Locust, ``probe``) sends the :class:`Request` and hands
back what came. Secrets go only into requests, never into a message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import jwt

from sim.outcomes import CLOCK_SLOP_S, Outcome, judge_held, refusal_reason
from sim.profiles.model import Endpoint, Profile, Refusal
from sim.untrusted import checked_alg

__all__ = [
    "REFUSAL_CLASSES",
    "Request",
    "TokenAnswer",
    "claimed_exp",
    "classify",
    "endpoint_request",
    "expected_classes",
    "judge_answer",
    "mint_token",
    "per_request",
    "present",
    "read_token",
    "refresh_request",
    "refused_as_expected",
    "render",
    "token_exp",
    "token_request",
]

REFUSAL_CLASSES = ("missing", "expired", "invalid", "forbidden")
_ONE = re.compile(r"^\{([^{}]*)\}$")
_FIELD = re.compile(r"\{([^{}]*)\}")
_ARITH = re.compile(r"^now\s*([+-])\s*(ttl|\d+)$")
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)  # may hold a secret

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path.split('?')[0]})"


@dataclass(frozen=True)
class TokenAnswer:
    token: str
    exp: float
    iat: float
    alg: str  # the JOSE alg, or "opaque"
    refresh_token: str | None = field(default=None, repr=False)


def _value(name: str, values: Mapping[str, Any]) -> Any:
    arith = _ARITH.match(name)
    if arith:
        offset = values["ttl"] if arith.group(2) == "ttl" else int(arith.group(2))
        return int(values["now"]) + (offset if arith.group(1) == "+" else -offset)
    key, _, spec = name.partition(":")
    value = values[key]
    return format(value, spec) if spec else value


def per_request(template: str) -> bool:
    """Whether ``template`` names a value that changes with every request (``now``, ``ts``,
    ``seq``), so what it renders cannot be kept for the next one."""
    for match in _FIELD.finditer(template):
        name = match.group(1).strip()
        if _ARITH.match(name) or name.partition(":")[0].strip() in ("now", "ts", "seq"):
            return True
    return False


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with its ``{placeholder}`` fields filled; a string that is one placeholder
    keeps its value's type (``"{now + ttl}"`` is a number)."""
    if isinstance(template, str):
        one = _ONE.match(template)
        if one:
            return _value(one.group(1).strip(), values)
        return _FIELD.sub(lambda m: str(_value(m.group(1).strip(), values)), template)
    if isinstance(template, dict):
        return {key: render(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [render(item, values) for item in template]
    return template


def _body(
    json_template: Any, form_template: Any, values: Mapping[str, Any]
) -> tuple[dict[str, str], bytes | None]:
    if form_template is not None:
        form = {k: str(v) for k, v in render(form_template, values).items()}
        return dict(_FORM), urlencode(form).encode()
    if json_template is not None:
        return dict(_JSON), json.dumps(render(json_template, values)).encode()
    return {}, None


def token_request(profile: Profile, values: Mapping[str, Any], *, assertion: bool) -> Request:
    """The token call (``assertion``: the device signs an RFC 7523 assertion, ``values`` has
    it as ``assertion``)."""
    token = profile.token
    form = token.assertion_form if assertion and token.assertion_form else token.form
    headers, body = _body(None if form is not None else token.json, form, values)
    return Request(token.method, render(token.path, values), {**headers, **token.headers}, body)


def refresh_request(profile: Profile, values: Mapping[str, Any]) -> Request:
    """The refresh call (``values`` has the held ``refresh_token``)."""
    refresh = profile.token.refresh
    if refresh is None:
        raise ValueError("the profile has no token.refresh")
    headers, body = _body(refresh.json, refresh.form, values)
    return Request(
        refresh.method, render(refresh.path, values), {**headers, **refresh.headers}, body
    )


def token_exp(token: str) -> tuple[float, float, str]:
    """(exp, iat, alg) of a JWT, read without verifying (we are not its audience)."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    exp = float(claims["exp"])
    return exp, float(claims.get("iat", time.time())), str(header.get("alg"))


def claimed_exp(token: str, reckoned_exp: float) -> float:
    """The token's own ``exp`` claim if it is a JWT that says, never later than
    ``reckoned_exp`` (the device's reckoning from ``expires_in`` when the answer came, later by
    the token call's latency); else ``reckoned_exp`` (an opaque token)."""
    try:
        return min(reckoned_exp, token_exp(token)[0])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError, RecursionError):
        return reckoned_exp


def read_token(
    profile: Profile, headers: Mapping[str, str], body: Any, now: float, *, refreshed: bool = False
) -> TokenAnswer | None:
    """The token (and its lifetime, and a refresh token if the profile names one) from a token
    answer (``refreshed``: the refresh call's); None when it holds no usable token."""
    spec = profile.token
    field_name = spec.refresh.token_field if refreshed and spec.refresh else spec.token_field
    try:
        if spec.token_header and not refreshed:
            raw = headers.get(spec.token_header) or headers.get(spec.token_header.lower())
            token = raw.split()[-1] if raw else None
        else:
            token = body.get(field_name) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return None
        refresh = None
        if spec.refresh_token_field and isinstance(body, dict):
            found = body.get(spec.refresh_token_field)
            refresh = found if isinstance(found, str) and found else None
        if spec.expires_in_field and isinstance(body, dict) and spec.expires_in_field in body:
            lifetime = float(body[spec.expires_in_field])
            try:
                alg: str | None = checked_alg(jwt.get_unverified_header(token).get("alg"))
            except jwt.PyJWTError:
                alg = "opaque"
        else:
            exp, iat, header_alg = token_exp(token)
            now, lifetime, alg = iat, exp - iat, checked_alg(header_alg)
        if alg is None:  # the API's own words for its algorithm: refused unless a plain name
            return None
        return TokenAnswer(token, now + lifetime, now, alg, refresh)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError, RecursionError):
        return None


def mint_token(profile: Profile, key: Any, values: Mapping[str, Any]) -> str:
    """A token the device signs itself: the profile's claims template, alg and key."""
    spec = profile.token
    claims = render(spec.claims, values)
    headers = render(spec.jose_header, values) or None
    return jwt.encode(claims, key, algorithm=spec.alg, headers=headers)


def present(profile: Profile, token: str | None, path: str) -> tuple[dict[str, str], str]:
    """(headers, path) carrying ``token`` the profile's way; None: no credential at all."""
    spec = profile.present
    if token is None:
        return {}, path
    if spec.query:
        sep = "&" if "?" in path else "?"
        return {}, f"{path}{sep}{spec.query}={quote(token, safe='')}"
    return {spec.header: spec.format.replace("{token}", token)}, path


def endpoint_request(
    profile: Profile, endpoint: Endpoint, values: Mapping[str, Any], token: str | None
) -> Request:
    credential, path = present(profile, token, render(endpoint.path, values))
    # The token's header wins over a fixed one of the same name: the corpus swaps it per case.
    headers = {**endpoint.headers, **credential}
    body = None
    if endpoint.body is not None:
        headers = {**headers, **_JSON}
        body = json.dumps(render(endpoint.body, values)).encode()
    return Request(endpoint.method, path, headers, body)


def expected_classes(reasons: frozenset[str]) -> tuple[str, ...]:
    """The profile classes a careful API refuses a forgery with, from the RFC 6750 classes
    our corpus expects of it (``reasons``): a missing credential is ``missing`` (or
    ``invalid``: a header under another scheme is malformed to many APIs), another device's
    token ``forbidden``, a lapsed one ``expired`` (or ``invalid``: many APIs answer every bad
    token alike), anything else ``invalid``."""
    if reasons == {"missing"}:
        return ("missing", "invalid")
    if "insufficient_scope" in reasons:
        return ("forbidden",)
    if "expired" in reasons:
        return ("expired", "invalid")
    return ("invalid",)


def refused_as_expected(
    profile: Profile,
    status: int,
    reason: str,
    expected_status: int,
    reasons: frozenset[str],
    *,
    base_expired: bool = False,
) -> bool:
    """Whether a refusal of a forgery is the one expected: for our target (RFC 6750) its
    status and one of the classes ``reasons``; for a profile of classes, a 4xx of an expected
    class (or ``invalid`` where the profile has no table for that class: the API cannot tell
    it apart). ``base_expired``: the genuine token the forgery was made from had expired by the
    answer, so ``expired`` is a true reason too (short tokens expire in flight)."""
    if base_expired and reason == "expired":
        return True
    if profile.refusals.read == "rfc6750":
        return status == expected_status and reason in reasons
    expected = expected_classes(reasons)
    if not any(getattr(profile.refusals, name) is not None for name in expected):
        expected = (*expected, "invalid")
    return 400 <= status < 500 and reason in expected


def _matches(refusal: Refusal, status: int, headers: Mapping[str, str], body: str) -> bool:
    if status not in refusal.status:
        return False
    if refusal.header is not None and refusal.pattern is not None:
        value = headers.get(refusal.header) or headers.get(refusal.header.lower()) or ""
        if not re.search(refusal.pattern, value):
            return False
    return refusal.body is None or re.search(refusal.body, body) is not None


def classify(profile: Profile, status: int, headers: Mapping[str, str], body: str = "") -> str:
    """The refusal class of an answer: ``missing``/``expired``/``invalid``/``forbidden`` (or,
    for an RFC 6750 API, its ``error_description`` class), else ``http_<status>``."""
    if profile.refusals.read == "rfc6750":
        challenge = headers.get("www-authenticate") or headers.get("WWW-Authenticate")
        return refusal_reason(status, challenge if status else None)
    for name in REFUSAL_CLASSES:
        refusal: Refusal | None = getattr(profile.refusals, name)
        if refusal is not None and _matches(refusal, status, headers, body):
            return name
    return f"http_{status}"


def judge_answer(
    profile: Profile, status: int, reason: str, *, exp: float, now: float, leeway_s: float
) -> Outcome:
    """A request with a genuine token the device holds (possibly past ``exp`` on purpose).

    Our target names the class (RFC 6750), so only an ``expired`` refusal of an expired token
    is expected. A foreign API may answer every bad token alike (403 for all): a refusal as
    ``expired`` or ``invalid`` of a token fleetbench knows is past its ``exp`` is expected too.
    """
    if profile.refusals.read == "rfc6750":
        return judge_held(status, reason, exp=exp, now=now, leeway_s=leeway_s)
    if status == 0:
        return "transport_error"
    if status >= 500:
        return "server_error"
    if 200 <= status < 300:
        return "accepted_invalid" if now > exp + leeway_s + CLOCK_SLOP_S else "ok"
    if reason in ("expired", "invalid") and now >= exp - CLOCK_SLOP_S:
        return "rejected_as_expected"
    return "refused_valid"
