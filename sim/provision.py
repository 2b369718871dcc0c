"""``fleetbench provision`` as a function: make or reuse a fleet file, and register it with a
target as its profile says (the bulk admin API, :mod:`sim.fleet.admin`, or a registration call)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import ConfigError
from sim.fleet.admin import DEFAULT_CHUNK, ProvisionResult, register_fleet
from sim.fleet.client import TargetClient
from sim.fleet.model import CredentialKind, Fleet, load_fleet, make_fleet, save_fleet
from sim.profiles import load_profile
from sim.profiles.registration import profile_fleet, register_by_call

__all__ = ["ProvisionConfig", "Provisioned", "provision"]


# Start a step of ``total`` units (description, total); the returned function advances it by n.
StepBar = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class ProvisionConfig:
    """Make ``devices`` devices into ``out`` (or reuse ``fleet``); register them if ``target``."""

    target: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    devices: int = 100
    alg: CredentialKind = "ES256"
    out: Path = Path("fleet.json")
    fleet: Path | None = None
    chunk: int = DEFAULT_CHUNK
    bar: StepBar | None = field(default=None, repr=False)
    profile: str = "fleetbench"  # the target profile (sim/profiles): ids, registration

    def check(self) -> None:
        if self.target is not None and not self.target.startswith(("http://", "https://")):
            raise ConfigError("--target must be an http:// or https:// URL")


@dataclass(frozen=True)
class Provisioned:
    """The fleet file written or reused, and its registration (None: not registered: no target,
    or a profile that registers none, ``via``)."""

    fleet: Fleet
    path: Path
    registered: ProvisionResult | None
    elapsed_s: float
    profile: str = "fleetbench"
    via: str = "admin"


def provision(config: ProvisionConfig) -> Provisioned:
    """``fleetbench provision``: the fleet file (mode 0600), registered with the target if one
    and if the profile registers devices (``provision.via`` admin or call)."""
    config.check()
    profile = load_profile(config.profile, os.environ)
    via = profile.provision.via
    started = time.monotonic()
    if config.fleet is not None:
        fleet, path = load_fleet(config.fleet), config.fleet
    else:
        advance = config.bar(f"keys ({config.alg})", config.devices) if config.bar else None
        if profile.name == "fleetbench":
            fleet = make_fleet(config.devices, config.alg, progress=advance)
        else:
            fleet = profile_fleet(profile, config.devices, progress=advance)
        path = config.out
        save_fleet(fleet, path)
    registered = None
    if config.target is not None and via in ("admin", "call"):
        client = TargetClient(config.target, config.admin_key)
        try:
            client.check_alive()
            if via == "call":
                registered = register_by_call(client, profile, fleet)
            else:
                advance = config.bar("register", len(fleet)) if config.bar else None
                registered = register_fleet(client, fleet, chunk=config.chunk, progress=advance)
        finally:
            client.close()
    return Provisioned(fleet, path, registered, time.monotonic() - started, profile.name, via)
