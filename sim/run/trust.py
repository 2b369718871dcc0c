"""The trust scenarios' side of ``fleetbench run``: ``rotation-storm``
(:mod:`sim.account.rotation`) and ``revocation`` (:mod:`sim.account.revocation`). A
:class:`TrustPlan` is made once the fleet is provisioned: it tells Locust which devices will be
revoked and where the journal is, runs the mid-run action beside the load, and adds its section
and verdict to the summary."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sim.account.measure import Measurements
from sim.account.revocation import (
    REVOKE_AT_SHARE,
    Journal,
    Revoker,
    pick_revoked,
    revocation_failures,
    revocation_section,
)
from sim.account.rotation import (
    ROTATE_AT_SHARE,
    NewKeyProbe,
    Rotator,
    rotation_failures,
    rotation_section,
)
from sim.account.storms import MidRun
from sim.artefacts.summary_file import Summary
from sim.errors import ConfigError
from sim.fleet.client import TargetClient
from sim.fleet.model import Device, Fleet
from sim.profiles import Profile
from sim.run.commands import run_command

__all__ = ["TRUST_SCENARIOS", "TrustPlan", "check_trust"]

TRUST_SCENARIOS = ("rotation-storm", "revocation")
ROTATION_MIN_DURATION_S = 8


def check_trust(
    storm: str | None,
    profile: Profile,
    *,
    embedded: bool,
    admin_key: bool,
    rotate_cmd: str | None,
    duration_s: float,
    token_ttl: int | None,
) -> None:
    """A trust scenario the run can carry out: a way to rotate or revoke, and the time for it."""
    if rotate_cmd is not None and (storm != "rotation-storm" or embedded):
        raise ConfigError(
            "--rotate-cmd rotates the key of a --target API in --scenario rotation-storm"
        )
    if storm == "rotation-storm":
        if rotate_cmd is None and profile.rotate is None:
            raise ConfigError(
                f"rotation-storm: profile {profile.name} has no [rotate] call: give --rotate-cmd"
            )
        if rotate_cmd is None and not admin_key:
            raise ConfigError("rotation-storm: the [rotate] call needs --admin-key")
        # The devices renew within 80 % of their tokens' lifetime after the rotation.
        needed = max(ROTATION_MIN_DURATION_S, (token_ttl or 0) + 2) / (1 - ROTATE_AT_SHARE)
        if duration_s < needed:
            raise ConfigError(
                f"rotation-storm: make --duration at least {math.ceil(needed)} s "
                "(the rotation comes 30 % in; the devices renew within their tokens' lifetime)"
            )
    if storm == "revocation":
        if profile.revoke is None:
            raise ConfigError(f"revocation: profile {profile.name} has no [revoke] call")
        if not admin_key:
            raise ConfigError("revocation: the [revoke] call needs --admin-key")
        if duration_s < 6:
            raise ConfigError("revocation: make --duration at least 6 s")


@dataclass
class TrustPlan:
    """One run's rotation or revocation: what Locust is told, the action, the section."""

    storm: str
    profile: Profile
    client: TargetClient = field(repr=False)
    scratch: Path
    embedded: bool
    rotate_cmd: str | None = None
    probe_device: Device | None = field(default=None, repr=False)  # the new-key probe's
    revoked: list[str] = field(default_factory=list)
    bound_s: float = 0.0
    _rotator: Rotator | None = None
    _revoker: Revoker | None = None
    _midrun: MidRun | None = None

    @classmethod
    def make(
        cls,
        storm: str | None,
        profile: Profile,
        client: TargetClient,
        scratch: Path,
        *,
        embedded: bool,
        fleet: Fleet,
        revoke_percent: float,
        bound_s: float | None,
        rotate_cmd: str | None,
    ) -> TrustPlan | None:
        if storm not in TRUST_SCENARIOS:
            return None
        plan = cls(storm, profile, client, scratch, embedded, rotate_cmd, fleet.devices[0])
        if storm == "revocation" and profile.revoke is not None:
            plan.revoked = pick_revoked([d.id for d in fleet.devices], revoke_percent)
            plan.bound_s = profile.revoke.bound_s if bound_s is None else bound_s
        return plan

    @property
    def journal_path(self) -> Path:
        return self.scratch / "revocations.jsonl"

    @property
    def via(self) -> str:
        if self.rotate_cmd is not None:
            return "command"
        return "admin" if self.embedded else "profile"

    def locust_settings(self) -> dict[str, Any]:
        """The SimConfig fields the devices need (no secret: device ids and a path)."""
        if self.storm != "revocation":
            return {}
        return {
            "revoked_devices": self.revoked,
            "revocation_journal": str(self.journal_path),
            "revocation_bound_s": self.bound_s,
        }

    @contextlib.contextmanager
    def running(self, progress: Path, duration_s: float) -> Iterator[None]:
        """The rotation or the revocations, on their thread, while the load runs."""
        if self.storm == "rotation-storm":
            probe = (
                NewKeyProbe(self.client, self.profile, self.probe_device)
                if self.probe_device is not None
                else None
            )
            command = (
                partial(run_command, self.rotate_cmd, "--rotate-cmd")
                if self.rotate_cmd is not None
                else None
            )
            self._rotator = Rotator(self.client, self.profile.rotate, command, self.via, probe)
            action: Any = self._rotator
            after_s = duration_s * ROTATE_AT_SHARE
        else:
            assert self.profile.revoke is not None  # check_trust
            self._revoker = Revoker(self.client, self.profile.revoke, self.revoked,
                                    self.journal_path)  # fmt: skip
            action = self._revoker
            after_s = duration_s * REVOKE_AT_SHARE
        with MidRun(action, progress, after_s) as midrun:
            self._midrun = midrun
            yield

    def apply(self, summary: Summary, measurements: Measurements) -> None:
        """The scenario's section in the summary, and its failures in the verdict."""
        failures: list[str] = []
        if self._rotator is not None:
            storm = rotation_section(
                measurements,
                self._rotator.rotation,
                refused_valid=summary["outcomes"].get("refused_valid", 0),
            )
            summary["storms"] = {"rotation": storm}
            failures += rotation_failures(storm)
        if self._revoker is not None:
            section = revocation_section(
                measurements,
                Journal(self.journal_path),
                devices=len(self.revoked),
                bound_s=self.bound_s,
                via=self.via,
                call_us=self._revoker.call_us,
            )
            summary["revocation"] = section
            failures += revocation_failures(section)
        if self._midrun is not None and self._midrun.error:
            failures.insert(0, self._midrun.error)
        if failures and not summary["run"]["interrupted"]:
            verdict = summary["verdict"]
            verdict["failures"].extend(failures)
            verdict["passed"] = False
            verdict["label"] = "FAIL"
