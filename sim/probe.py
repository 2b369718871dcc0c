"""``fleetbench probe``: does a profile read an API the way the API answers?

One device, a handful of requests (a valid token, no token, a forged signature, an unsigned
token, a malformed one, an expired token, a token on another device's path), each classified
through the profile (:mod:`sim.profiles.http`) and set against what a correct API does. Typed
config in, typed result out; the CLI prints and picks the exit code. Secrets and whole tokens
never reach a step. ``fleetbench attack`` through a profile sets up its device, its genuine
token and its endpoint with the same functions (:mod:`sim.attack.profiled`).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
import requests

from sim.errors import AdminKeyRejected, SimError, TargetUnreachable, TargetUnusable
from sim.fleet.admin import register_fleet
from sim.fleet.client import TargetClient
from sim.fleet.model import Device, Fleet, make_device, make_fleet
from sim.profiles.http import (
    REFUSAL_CLASSES,
    Request,
    classify,
    endpoint_request,
    mint_token,
    read_token,
    render,
    token_request,
)
from sim.profiles.load import line_of
from sim.profiles.model import Endpoint, Profile
from sim.profiles.registration import read_devices_file, register_by_call
from sim.untrusted import Answer, fetch, same_origin, shown

__all__ = [
    "ProbeConfig",
    "ProbeError",
    "ProbeResult",
    "ProbeStep",
    "ProfileLines",
    "Unusable",
    "genuine_token",
    "probe_devices",
    "probe_endpoint",
    "probe_pair",
    "request_values",
    "run_probe",
    "signing_key",
    "token_alg_of",
]

EXCERPT_CHARS = 100
# The probe reads a token answer's JSON or a refusal's start: a real one fits many times over.
PROBE_BYTES = 64 * 1024
# Headers worth showing: they carry the refusal class (never Authorization: we sent that).
_SHOWN_HEADERS = ("www-authenticate",)


class ProbeError(SimError):
    """The probe could not start: target unreachable, no device, no valid token."""


@dataclass(frozen=True)
class ProbeConfig:
    profile: Profile
    target: str
    admin_key: str | None = None  # profiles that register through our admin API
    expiry_wait_s: float = 20.0  # longest wait for an endpoint token to expire
    timeout_s: float = 10.0


@dataclass(frozen=True)
class ProbeStep:
    name: str  # valid, missing, forged, expired, wrong-device
    request: str  # "GET /devices/dev-1/config" (no query string: it may carry the token)
    status: int
    excerpt: str  # the relevant header or the body's start, with any token cut out
    classified: str  # the profile's class: ok, missing, invalid, expired, forbidden, http_<n>
    expected: str  # what a correct API does, in the profile's words
    consistent: bool
    fix: str = ""  # when not consistent: the profile line to change, or the API's fault


@dataclass(frozen=True)
class ProbeResult:
    profile: str
    target: str
    steps: list[ProbeStep]
    skipped: list[str] = field(default_factory=list)  # steps that could not be made, and why

    @property
    def consistent(self) -> bool:
        return all(step.consistent for step in self.steps)


Send = Callable[[Request], Answer]


def _sender(session: requests.Session, base: str, timeout_s: float) -> Send:
    """One request to the target: on its origin only, never following a redirect, its answer
    read to at most PROBE_BYTES within one deadline; no answer is a ProbeError."""

    def send(request: Request) -> Answer:
        url = base + request.path
        if not same_origin(base, url):
            raise ProbeError(f"{request!r} would leave --target {base}: refused")
        try:
            return fetch(
                session, request.method, url, headers=request.headers, data=request.body,
                timeout_s=timeout_s, cap_bytes=PROBE_BYTES, truncate=True,
            )  # fmt: skip
        except TargetUnusable as e:
            raise ProbeError(f"{base}: {e}") from None

    return send


def run_probe(config: ProbeConfig) -> ProbeResult:
    """Probe ``config.target`` through ``config.profile``; raises :class:`ProbeError`."""
    profile = config.profile
    endpoint = probe_endpoint(profile)
    token_spec = profile.token
    if (
        not profile.minted
        and token_spec.assertion_form
        and not (token_spec.form or token_spec.json)
    ):
        # The probe's device holds a secret, not a key pair: it signs no RFC 7523 assertion.
        raise ProbeError(
            f"profile {profile.name}: probe needs a token call with a secret (token.form or "
            "token.json); assertion_form alone is not probed yet"
        )
    session = requests.Session()
    base = config.target.rstrip("/")
    send = _sender(session, base, config.timeout_s)
    try:
        lines = ProfileLines(profile)
        try:
            device, other = probe_devices(config, lines)
            token, exp = genuine_token(config, device, send, lines)
        except Unusable as e:
            return ProbeResult(profile.name, base, [e.step], ["the other probes: no valid token"])
        values = request_values(profile, device, other)
        steps = [
            _step("valid", profile, endpoint, values, token, send, lines),
            _step("missing", profile, endpoint, values, None, send, lines),
            _step("forged", profile, endpoint, values, _forge(token), send, lines),
            _step("malformed", profile, endpoint, values, "not-a-token", send, lines),
        ]
        unsigned = _unsigned(token)
        if unsigned is not None:
            steps.append(_step("alg-none", profile, endpoint, values, unsigned, send, lines))
        skipped: list[str] = []
        if "{device_id}" in endpoint.path:
            others = {**values, "device_id": other}
            steps.append(_step("wrong-device", profile, endpoint, others, token, send, lines))
        else:
            skipped.append(f"wrong-device: the {endpoint.name} path names no device")
        # Last: waiting out the API's own token leaves the device with no valid one.
        expired = _expired_token(config, device, send, token, exp)
        if isinstance(expired, str) and expired.startswith("skip:"):
            skipped.append(f"expired: {expired.removeprefix('skip:')}")
        elif expired is not None:
            steps.append(_step("expired", profile, endpoint, values, expired, send, lines))
        return ProbeResult(profile.name, base, steps, skipped)
    finally:
        session.close()


def token_alg_of(config: ProbeConfig) -> str:
    """The algorithm the API's tokens carry (their JOSE ``alg``): a minted profile's own, else
    one token fetched for a probe device registered the profile's way; ``opaque`` when the
    token is no JWT."""
    profile = config.profile
    if profile.minted:
        return profile.token.alg
    session = requests.Session()
    send = _sender(session, config.target.rstrip("/"), config.timeout_s)
    lines = ProfileLines(profile)
    try:
        device, _ = probe_devices(config, lines)
        token, _ = genuine_token(config, device, send, lines)
    except Unusable as e:
        raise ProbeError(f"cannot fetch a token to learn its algorithm: {e.step.fix}") from None
    finally:
        session.close()
    try:
        return str(jwt.get_unverified_header(token).get("alg"))
    except jwt.PyJWTError:
        return "opaque"


def probe_endpoint(profile: Profile) -> Endpoint:
    if not profile.endpoints:
        raise ProbeError(f"profile {profile.name} has no [[endpoints]] to probe")
    # A device's own path shows the wrong-device answer too; otherwise the first endpoint.
    return next((e for e in profile.endpoints if "{device_id}" in e.path), profile.endpoints[0])


def request_values(profile: Profile, device: Device, other: str) -> dict[str, Any]:
    """What the profile's templates may name, for ``device`` now (``other``: another id)."""
    now = time.time()
    return {
        "device_id": device.id,
        "other_device_id": other,
        "secret": device.secret,
        "n": 0,
        "now": int(now),
        "ts": now,
        "ttl": profile.token.ttl_s,
        "seq": 1,
    }


# -- the device -----------------------------------------------------------------------------------


def probe_devices(config: ProbeConfig, lines: ProfileLines) -> tuple[Device, str]:
    """The probe's device, registered the profile's way, and another device's id."""
    device, other = probe_pair(config, lines)
    return device, other.id if other is not None else device.id + "x"


def probe_pair(config: ProbeConfig, lines: ProfileLines) -> tuple[Device, Device | None]:
    """Two devices registered the profile's way (None: a devices file with only one)."""
    profile = config.profile
    spec = profile.provision
    client = TargetClient(config.target, config.admin_key)
    tag = secrets.randbelow(90_000) + 10_000  # fresh ids: never a device a run left behind
    try:
        client.check_alive()
        if spec.via == "file" and spec.file:
            fleet = read_devices_file(Path(spec.file))
            return fleet.devices[0], fleet.devices[1] if len(fleet.devices) > 1 else None
        kind: Any = "secret"  # the probe needs no key: the token call takes a secret
        if spec.via == "admin":
            fleet = make_fleet(2, kind)
            register_fleet(client, fleet)
            return fleet.devices[0], fleet.devices[1]
        ids = [str(render(profile.devices.id_pattern, {"n": tag + i})) for i in range(2)]
        pair = [make_device(device_id, kind) for device_id in ids]
        if spec.via == "call":
            register_by_call(client, profile, Fleet(kind, pair))
        return pair[0], pair[1]
    except (TargetUnreachable, AdminKeyRejected) as e:
        raise ProbeError(f"cannot register a probe device: {e}") from None
    except TargetUnusable as e:  # the registration call answered what the profile did not expect
        answered = re.search(r"answered (\d+)", str(e))
        status = int(answered.group(1)) if answered else 0
        fix = (
            f"the registration call answered {status}: check [provision] path, json/form, ok "
            f"and exists ({lines.at('provision', 'path')})"
        )
        label = f"{spec.method} {spec.path}"
        step = ProbeStep("register", label, status, "", f"http_{status}", "ok", False, fix)
        raise Unusable(step) from None
    except SimError as e:
        raise ProbeError(f"cannot register a probe device: {e}") from None
    finally:
        client.close()


class Unusable(Exception):
    """The profile's own setup calls (registration, token) do not fit the API: one step."""

    def __init__(self, step: ProbeStep) -> None:
        super().__init__(step.fix)
        self.step = step


def genuine_token(
    config: ProbeConfig, device: Device, send: Send, lines: ProfileLines
) -> tuple[str, float]:
    profile = config.profile
    values = request_values(profile, device, "")
    if profile.minted:
        return mint_token(profile, signing_key(profile), values), values["now"] + values["ttl"]
    request = token_request(profile, values, assertion=False)
    response = send(request)
    label = f"{request.method} {request.path.split('?')[0]}"
    status = response.status_code
    if status not in profile.token.ok:
        fix = (
            f"the token call answered {status} to the probe device's genuine credentials: "
            f"check [token] path, json/form and ok ({lines.at('token', 'path')})"
        )
        excerpt = _excerpt(response, "")
        raise Unusable(
            ProbeStep("token", label, status, excerpt, f"http_{status}", "ok", False, fix)
        )
    answer = read_token(profile, response.headers, _json(response), time.time())
    if answer is None:
        key = "token_header" if profile.token.token_header else "token_field"
        where = profile.token.token_header or profile.token.token_field
        fix = (
            f"the token call answered {status} without a usable token in {where!r}: check [token] "
            f"{key} ({lines.at('token', key)})"
        )
        excerpt = _excerpt(response, "")
        raise Unusable(ProbeStep("token", label, status, excerpt, "no token", "ok", False, fix))
    return answer.token, answer.exp


def signing_key(profile: Profile) -> Any:
    if profile.token.private_key_file:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(Path(profile.token.private_key_file).read_bytes(), None)
    return profile.token.secret


def _expired_token(
    config: ProbeConfig, device: Device, send: Send, token: str, exp: float
) -> str | None:
    """A token past its exp (+ leeway): minted in the past, or the API's own waited out.
    ``"skip:why"`` when none can be had within ``expiry_wait_s``."""
    profile = config.profile
    if profile.minted:
        values = request_values(profile, device, "")
        ttl = profile.token.short_ttl_s
        values["now"] = int(time.time()) - ttl - int(profile.leeway_s) - 60
        values["ttl"] = ttl
        return mint_token(profile, signing_key(profile), values)
    wait_s = exp + profile.leeway_s + 1 - time.time()
    if wait_s > config.expiry_wait_s:
        return (
            f"skip:the API's token lives {wait_s:.0f} s more (leeway included), longer than "
            f"--expiry-wait {config.expiry_wait_s:.0f} s"
        )
    time.sleep(max(wait_s, 0.0))
    return token


def _forge(token: str) -> str:
    """The token with its signature's first byte flipped (a JWT); an opaque token altered."""
    parts = token.split(".")
    if len(parts) == 3 and parts[2]:
        raw = bytearray(base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)))
        raw[0] ^= 0xFF
        signature = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        return ".".join([parts[0], parts[1], signature])
    return token[:-1] + ("A" if token[-1:] != "A" else "B")


def _unsigned(token: str) -> str | None:
    """The token's claims under ``{"alg": "none"}`` with no signature; None for an opaque one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{parts[1]}."


# -- one request, judged --------------------------------------------------------------------------

# What a correct API answers to each probe, in the profile's classes.
_EXPECTED = {
    "valid": "ok",
    "missing": "missing",
    "forged": "invalid",
    "alg-none": "invalid",
    "malformed": "invalid",
    "expired": "expired",
    "wrong-device": "forbidden",
}
_WHAT = {
    "missing": "request without a token",
    "forged": "token with a forged signature",
    "alg-none": "unsigned token (alg none)",
    "malformed": "malformed token",
    "expired": "expired token",
    "wrong-device": "token on another device's path",
}
# RFC 6750 profiles read the class from error_description: the names our target uses.
_RFC6750 = {
    "missing": {"missing"},
    "invalid": {"signature", "malformed", "claims", "invalid_token"},
    "expired": {"expired"},
    "forbidden": {"insufficient_scope", "forbidden", "device_mismatch", "http_403", "http_404"},
}


def _step(
    name: str,
    profile: Profile,
    endpoint: Endpoint,
    values: dict[str, Any],
    token: str | None,
    send: Send,
    lines: ProfileLines,
) -> ProbeStep:
    request = endpoint_request(profile, endpoint, values, token)
    response = send(request)
    status = response.status_code
    body = response.text[:4096]
    accepted = status in endpoint.ok
    classified = "ok" if accepted else classify(profile, status, response.headers, body)
    expected = _EXPECTED[name]
    label = f"{request.method} {request.path.split('?')[0]}"
    excerpt = _excerpt(response, token or "")
    consistent, fix = _judge(name, profile, endpoint, status, accepted, classified, lines)
    return ProbeStep(name, label, status, excerpt, classified, expected, consistent, fix)


def _judge(
    name: str,
    profile: Profile,
    endpoint: Endpoint,
    status: int,
    accepted: bool,
    classified: str,
    lines: ProfileLines,
) -> tuple[bool, str]:
    index = profile.endpoints.index(endpoint)
    if status >= 500:
        return False, f"the API failed ({status}): a correct API answers a 2xx or 4xx"
    if name == "valid":
        if accepted:
            return True, ""
        return False, (
            f"a genuine token was refused ({status}, {classified}): check the token call, "
            f"[present] ({lines.at('present')}) or endpoints[{index}].ok "
            f"({lines.at('endpoints', index, 'ok')})"
        )
    if accepted:
        return False, (
            f"the API accepted the {_WHAT[name]} ({status}): a correct API refuses it; no "
            "profile line fixes that, the API must"
        )
    if profile.refusals.read == "rfc6750":
        wanted = _RFC6750[_EXPECTED[name]]
        if name == "expired":
            wanted = wanted | _RFC6750["invalid"]
        if classified in wanted:
            return True, ""
        return False, (
            f"the refusal reads as {classified!r}, not as {_EXPECTED[name]}: this API does not "
            f'answer RFC 6750 classes; set [refusals] read = "classes" '
            f"({lines.at('refusals', 'read')}) with status tables"
        )
    wanted_class = _EXPECTED[name]
    # An API may answer every bad token alike: an expired token refused as invalid is fine
    # (the simulator counts it rejected_as_expected), so is another device's path answered as
    # an invalid token or an unnamed 403/404.
    if classified == wanted_class:
        return True, ""
    if name == "expired" and classified == "invalid":
        return True, ""
    if name == "wrong-device" and (classified == "invalid" or status in (403, 404)):
        return True, ""
    table = wanted_class if wanted_class in REFUSAL_CLASSES else "invalid"
    return False, (
        f"a {name} token was refused {status} but the profile reads it as {classified!r}: "
        f"add {status} to [refusals] {table} ({lines.at('refusals', table)})"
    )


def _excerpt(response: Answer, token: str) -> str:
    for header in _SHOWN_HEADERS:
        value = response.headers.get(header)
        if value:  # the realm says nothing about the refusal: the error fields do
            value = re.sub(r'realm="[^"]*",?\s*', "", value)
            return _clean(f"{header}: {value}", token)
    return _clean(response.text, token)


def _clean(text: str, token: str) -> str:
    """One line, short, no token: neither the one sent nor any JWT-shaped string answered; no
    control character or escape sequence (it came from the API)."""
    text = shown(text)
    if token:
        text = text.replace(token, "<token>")
    words = ["<token>" if w.count(".") == 2 and len(w) > 40 else w for w in text.split()]
    text = " ".join(words)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _json(response: Answer) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class ProfileLines:
    """Where a key sits in the profile's file, for ``file:line`` in a fix."""

    def __init__(self, profile: Profile) -> None:
        self.label = profile.source or profile.name
        builtin = self.label.removesuffix(" (built in)")
        try:
            if builtin != self.label:
                folder = resources.files("sim.profiles") / "builtin"
                self.text = (folder / f"{builtin}.toml").read_text(encoding="utf-8")
            else:
                self.text = Path(self.label).read_text(encoding="utf-8")
        except OSError:
            self.text = ""

    def at(self, *path: str | int) -> str:
        return f"{self.label}:{line_of(self.text, path) if self.text else 1}"
