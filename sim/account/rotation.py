"""``--scenario rotation-storm``: the signing key rotated mid-run, and how the API and the fleet
come through it.

Mid-run the orchestrator rotates the key: through our admin API (``POST /admin/keys/rotate``),
the profile's ``[rotate]`` call, or the user's ``--rotate-cmd``. The devices
(:mod:`sim.device.trust_tasks`) keep using the tokens they hold and renew them as they would
(proactively, within their lifetime), marking the first moment they hold a token by each key
(``kid`` in its header) and the first time the API accepts one; a valid token refused is
counted by its key. For an API that publishes a JWKS the orchestrator also watches it after the
rotation until it lists a new ``kid``.

A correct API refuses no token by the old key during the grace period: the run fails on any
``refused_valid`` by an old key.

This module never imports Locust or gevent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from sim.account.measure import Measurements
from sim.artefacts.summary_file import RotationStorm
from sim.errors import SimError
from sim.fleet.client import TargetClient
from sim.fleet.model import Device
from sim.profiles import Profile
from sim.profiles.http import Request, endpoint_request, read_token, token_request
from sim.profiles.model import Rotate
from sim.untrusted import Answer

__all__ = [
    "HELD",
    "OK",
    "REFUSED_VALID",
    "ROTATE_AT_SHARE",
    "NewKeyProbe",
    "Rotation",
    "Rotator",
    "rotation_failures",
    "rotation_line",
    "rotation_section",
    "seconds_text",
    "token_kid",
]

# Device marks (Measurements.storm_marks) and counters, each followed by the token's kid.
HELD, OK, REFUSED_VALID = "held:", "ok:", "refused_valid kid:"
# The key is rotated this share of --duration after Locust's test starts.
ROTATE_AT_SHARE = 0.3
JWKS_POLL_S = 0.05
JWKS_WATCH_S = 30.0  # how long after the rotation the JWKS is watched for a new kid, at most
MAX_JWKS_BYTES = 1 << 20


@dataclass
class Rotation:
    """What the rotation did and when (Unix s)."""

    via: str
    started_at: float | None = None
    rotated_at: float | None = None
    new_kid: str | None = None  # as the API answered, if it says
    grace_s: float | None = None
    jwks: str | None = None  # the JWKS path watched: the API publishes one with keys in it
    jwks_before: set[str] = field(default_factory=set)
    jwks_new_kid_at: float | None = None
    probe_old_kid: str | None = None  # the new-key probe's token's kid before the rotation
    new_key_issued_at: float | None = None  # the probe was first issued a token by a new key
    new_key_accepted_at: float | None = None  # ... and the API first accepted it


def _jwks_kids(client: TargetClient, path: str) -> set[str] | None:
    """The kids the JWKS lists (hostile input: bounded, any shape), None if it is unreadable."""
    try:
        # A new connection each time: each look may reach another of the API's processes.
        response = client.request("GET", path, headers={"Connection": "close"})
    except SimError:
        return None
    if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
        return None
    try:
        keys = response.json().get("keys", [])
    except (ValueError, AttributeError):
        return None
    if not isinstance(keys, list):
        return None
    return {str(k["kid"])[:200] for k in keys if isinstance(k, dict) and "kid" in k}


class NewKeyProbe:
    """One device of the fleet asking for a token and presenting it, each on a new connection:
    after the rotation, when the token call first issues a token by a new key, and when the API
    first accepts one (the issue a JWKS cache makes late). Presented to an endpoint without a
    body, so the probe writes no reading into the devices' telemetry account."""

    def __init__(self, client: TargetClient, profile: Profile, device: Device) -> None:
        self._client = client
        self._profile = profile
        self._device = device
        self._endpoint = next((e for e in profile.endpoints if e.body is None), None)
        self.old_kid: str | None = None

    @property
    def usable(self) -> bool:
        """A token call to ask and an endpoint to present to (a minted profile has no call)."""
        return not self._profile.minted and self._endpoint is not None

    def _values(self) -> dict[str, Any]:
        now = time.time()
        return {"device_id": self._device.id, "other_device_id": self._device.id, "n": 0,
                "secret": self._device.secret, "now": int(now), "ts": now, "seq": 1,
                "ttl": self._profile.token.ttl_s}  # fmt: skip

    def _send(self, request: Request) -> Answer | None:
        headers = {**request.headers, "Connection": "close"}
        try:
            return self._client.request(
                request.method, request.path, headers=headers, data=request.body
            )
        except SimError:
            return None

    def token(self) -> tuple[str, str] | None:
        """A token from the profile's token call, and its kid; None if none was issued."""
        response = self._send(token_request(self._profile, self._values(), assertion=False))
        if response is None or response.status_code not in self._profile.token.ok:
            return None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        answer = read_token(self._profile, response.headers, body, time.time())
        return None if answer is None else (answer.token, token_kid(answer.token))

    def accepted(self, token: str) -> bool:
        assert self._endpoint is not None  # usable
        response = self._send(endpoint_request(self._profile, self._endpoint, self._values(),
                                               token))  # fmt: skip
        return response is not None and response.status_code in self._endpoint.ok


class Rotator:
    """The rotation (the admin or profile call, or the command), then the JWKS watch and the
    new-key probe, side by side until both have seen the new key (at most ``JWKS_WATCH_S``)."""

    def __init__(
        self,
        client: TargetClient,
        spec: Rotate | None,
        command: Callable[[], None] | None,
        via: str,
        probe: NewKeyProbe | None = None,
    ) -> None:
        self._client = client
        self._spec = spec
        self._command = command
        self._probe = probe if probe is not None and probe.usable else None
        self.rotation = Rotation(via)

    def _rotate(self) -> None:
        rotation = self.rotation
        rotation.started_at = time.time()
        if self._command is not None:
            self._command()  # the user's --rotate-cmd, run to its end
            rotation.rotated_at = time.time()
            return
        assert self._spec is not None  # checked by RunConfig.check
        response = self._client.request(self._spec.method, self._spec.path, admin=True)
        rotation.rotated_at = time.time()
        if response.status_code not in self._spec.ok:
            raise SimError(
                f"rotation-storm: {self._spec.method} {self._spec.path} answered "
                f"{response.status_code}, not {self._spec.ok}"
            )
        try:
            answer: Any = response.json()
        except ValueError:
            return
        if isinstance(answer, dict):
            kid, grace = answer.get("kid"), answer.get("grace_s")
            rotation.new_kid = str(kid)[:200] if isinstance(kid, str) else None
            rotation.grace_s = float(grace) if isinstance(grace, int | float) else None

    def __call__(self, stop: threading.Event) -> None:
        rotation = self.rotation
        jwks = self._spec.jwks if self._spec is not None else None
        before = _jwks_kids(self._client, jwks) if jwks else None
        rotation.jwks_before = before or set()
        probe = self._probe
        old_token = probe.token() if probe is not None else None
        self._rotate()
        if before:  # a JWKS with keys in it (HS* publishes none): watch it
            rotation.jwks = jwks
        if probe is not None and old_token is not None:
            rotation.probe_old_kid = old_token[1]
        new_token: str | None = None
        deadline = time.monotonic() + JWKS_WATCH_S
        while not stop.is_set() and time.monotonic() < deadline:
            if rotation.jwks and rotation.jwks_new_kid_at is None:
                kids = _jwks_kids(self._client, rotation.jwks)
                if kids and kids - rotation.jwks_before:
                    rotation.jwks_new_kid_at = time.time()
            if rotation.probe_old_kid is not None and rotation.new_key_accepted_at is None:
                assert probe is not None
                if new_token is None:
                    issued = probe.token()
                    if issued is not None and issued[1] != rotation.probe_old_kid:
                        new_token = issued[0]
                        rotation.new_key_issued_at = time.time()
                if new_token is not None and probe.accepted(new_token):
                    rotation.new_key_accepted_at = time.time()
            jwks_done = not rotation.jwks or rotation.jwks_new_kid_at is not None
            probe_done = rotation.probe_old_kid is None or rotation.new_key_accepted_at is not None
            if jwks_done and probe_done:
                return
            stop.wait(JWKS_POLL_S)


def token_kid(token: str) -> str:
    """The ``kid`` in a token's header (not verified: only to tell keys apart)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return "opaque"
    return str(kid)[:200] if kid is not None else "none"


def _since(moment: float | None, origin: float | None) -> float | None:
    return None if moment is None or origin is None else round(moment - origin, 3)


def rotation_section(
    measurements: Measurements, rotation: Rotation, *, refused_valid: int
) -> RotationStorm:
    """The rotation from the devices' marks: which keys they held, when each first held a token
    by the new key, when the API first accepted one, and the valid tokens refused by key."""
    started = rotation.started_at if rotation.started_at is not None else float("inf")
    first_held: dict[str, float] = {}
    for marks in measurements.storm_marks.values():
        for name, moment in marks.items():
            if name.startswith(HELD):
                kid = name.removeprefix(HELD)
                first_held[kid] = min(moment, first_held.get(kid, moment))
    old = {kid for kid, moment in first_held.items() if moment < started}
    if rotation.new_kid is not None:
        new = {rotation.new_kid}
    else:
        new = {kid for kid in first_held if kid not in old}
    holders = [m for m in measurements.storm_marks.values() if any(n.startswith(HELD) for n in m)]
    renewed = [min(m[HELD + kid] for kid in new if HELD + kid in m) for m in holders
               if any(HELD + kid in m for kid in new)]  # fmt: skip
    accepted = [m[OK + kid] for m in holders for kid in new if OK + kid in m]
    counted = {
        name.removeprefix(REFUSED_VALID): n
        for name, n in measurements.counters.items()
        if name.startswith(REFUSED_VALID)
    }
    everyone = bool(holders) and len(renewed) == len(holders)
    return {
        "via": rotation.via,
        "started_at": rotation.started_at,
        "rotated_at": rotation.rotated_at,
        "old_kids": sorted(old),
        "new_kids": sorted(new),
        "grace_s": rotation.grace_s,
        "devices": len(holders),
        "devices_renewed": len(renewed),
        "time_to_all_new_s": _since(max(renewed), rotation.rotated_at) if everyone else None,
        "first_new_key_accepted_s": _since(min(accepted, default=None), rotation.rotated_at),
        "jwks": rotation.jwks,
        "jwks_new_kid_s": _since(rotation.jwks_new_kid_at, rotation.rotated_at),
        "probed": rotation.probe_old_kid is not None,
        "new_key_issued_s": _since(rotation.new_key_issued_at, rotation.rotated_at),
        "new_key_accepted_s": _since(rotation.new_key_accepted_at, rotation.rotated_at),
        "refused_valid": refused_valid,
        "refused_valid_old_key": sum(n for kid, n in counted.items() if kid in old),
        "refused_valid_new_key": sum(n for kid, n in counted.items() if kid in new),
    }


def rotation_failures(storm: RotationStorm) -> list[str]:
    """A valid token refused: by the old key, the grace period did not hold; by the new one,
    the API was not ready for the key its own token call signs with."""
    if storm["rotated_at"] is None:
        return ["rotation-storm: the key was not rotated during the run"]
    failures = []
    if not storm["new_kids"]:
        failures.append(
            "rotation-storm: no token by a new key was seen after the rotation (did it take "
            "effect? do the tokens carry a kid?)"
        )
    if storm["refused_valid_old_key"]:
        failures.append(
            f"rotation-storm: {storm['refused_valid_old_key']} valid tokens by the old key "
            "refused after the rotation (the grace period should keep them verifying)"
        )
    if storm["refused_valid_new_key"]:
        failures.append(
            f"rotation-storm: {storm['refused_valid_new_key']} valid tokens by the new key "
            "refused (issued before the API accepted its key)"
        )
    return failures


def seconds_text(value: float | None, digits: int) -> str:
    """A time for a table line: ``1.23 s``, or ``-`` when there is none."""
    return "-" if value is None else f"{value:.{digits}f} s"


def rotation_line(storm: RotationStorm) -> str:
    """One line for the table."""
    return (
        f"rotation storm ({storm['via']}): {storm['devices_renewed']}/{storm['devices']} devices "
        f"on the new key, all of them {seconds_text(storm['time_to_all_new_s'], 2)} after the "
        f"rotation; first new-key token accepted after "
        f"{seconds_text(storm['first_new_key_accepted_s'], 3)}"
        + (
            f" (probe: issued {seconds_text(storm['new_key_issued_s'], 3)}, accepted "
            f"{seconds_text(storm['new_key_accepted_s'], 3)})"
            if storm["probed"]
            else ""
        )
        + (
            f"; JWKS listed it after {seconds_text(storm['jwks_new_kid_s'], 3)}"
            if storm["jwks"]
            else ""
        )
        + f"; refused_valid {storm['refused_valid']} ({storm['refused_valid_old_key']} by the "
        "old key)"
    )
