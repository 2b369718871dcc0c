"""``--scenario rotation-storm``: the signing key rotated mid-run, and how the API and the fleet
come through it.

Mid-run the orchestrator rotates the key: through our admin API (``POST /admin/keys/rotate``),
the profile's ``[rotate]`` call, or the user's ``--rotate-cmd``. The devices
(:mod:`sim.trust_device`) keep using the tokens they hold and renew them as they would
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
from dataclasses import dataclass, field
from typing import Any

from sim.artefacts import RotationStorm
from sim.commands import run_command
from sim.errors import SimError
from sim.http import TargetClient
from sim.measure import Measurements
from sim.profiles.model import Rotate

__all__ = [
    "HELD",
    "OK",
    "REFUSED_VALID",
    "ROTATE_AT_SHARE",
    "Rotation",
    "Rotator",
    "rotation_failures",
    "rotation_section",
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


class Rotator:
    """The rotation (the admin or profile call, or the command), then the JWKS watch."""

    def __init__(
        self,
        client: TargetClient,
        spec: Rotate | None,
        command: str | None,
        via: str,
    ) -> None:
        self._client = client
        self._spec = spec
        self._command = command
        self.rotation = Rotation(via)

    def _rotate(self) -> None:
        rotation = self.rotation
        rotation.started_at = time.time()
        if self._command is not None:
            run_command(self._command, "--rotate-cmd")
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
        jwks = self._spec.jwks if self._spec is not None else None
        before = _jwks_kids(self._client, jwks) if jwks else None
        self.rotation.jwks_before = before or set()
        self._rotate()
        if not before:  # no JWKS, or an empty one (HS*): nothing to watch
            return
        self.rotation.jwks = jwks
        deadline = time.monotonic() + JWKS_WATCH_S
        while not stop.is_set() and time.monotonic() < deadline:
            kids = _jwks_kids(self._client, jwks or "")
            if kids and kids - before:
                self.rotation.jwks_new_kid_at = time.time()
                return
            stop.wait(JWKS_POLL_S)


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
        "refused_valid": refused_valid,
        "refused_valid_old_key": sum(n for kid, n in counted.items() if kid in old),
        "refused_valid_new_key": sum(n for kid, n in counted.items() if kid in new),
    }


def rotation_failures(storm: RotationStorm) -> list[str]:
    """A valid token by the old key refused: the grace period did not hold."""
    if storm["rotated_at"] is None:
        return ["rotation-storm: the key was not rotated during the run"]
    if storm["refused_valid_old_key"]:
        return [
            f"rotation-storm: {storm['refused_valid_old_key']} valid tokens by the old key "
            "refused after the rotation (the grace period should keep them verifying)"
        ]
    return []
