"""Provisioning: make a fleet file and register it with a target through the bulk admin API,
resuming over a fleet the target already knows."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import ConfigError, FleetMismatch, TargetUnusable
from sim.fleet import CredentialKind, Device, Fleet, load_fleet, make_fleet, save_fleet
from sim.http import TargetClient
from sim.untrusted import shown

__all__ = [
    "DEFAULT_CHUNK",
    "ProvisionConfig",
    "ProvisionResult",
    "Provisioned",
    "provision",
    "register_fleet",
]

DEFAULT_CHUNK = 1000
MISMATCH = "fleet file does not match the target"


# Start a step of ``total`` units (description, total); the returned function advances it by n.
StepBar = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class ProvisionResult:
    """How a registration went: devices new to the target, and devices it already had."""

    created: int
    already_registered: int


def _matches(device: Device, record: dict[str, Any]) -> bool:
    if device.public_jwk is None:
        return record.get("public_key") is None and bool(record.get("has_secret"))
    return record.get("alg") == device.alg and record.get("public_key") == device.public_jwk


def _post(client: TargetClient, devices: list[Device]) -> int:
    """Register ``devices``; the HTTP status (201 or 409), or an error for anything else."""
    body = {"devices": [device.registration() for device in devices]}
    response = client.request("POST", "/admin/devices", admin=True, json=body)
    if response.status_code in (201, 409):
        return response.status_code
    try:
        reason = shown(response.json().get("error_description", ""), limit=200)
    except (ValueError, AttributeError):
        reason = ""
    raise TargetUnusable(f"device registration answered {response.status_code} {reason}".strip())


def _resolve_conflict(client: TargetClient, chunk: list[Device]) -> tuple[int, int]:
    """A chunk the target partly or wholly knows: check the known, register the rest."""
    missing: list[Device] = []
    known = 0
    for device in chunk:
        response = client.request("GET", f"/admin/devices/{device.id}", admin=True)
        if response.status_code == 404:
            missing.append(device)
        elif response.status_code == 200:
            if not _matches(device, response.json()):
                raise FleetMismatch(f"{MISMATCH} (device {device.id})")
            known += 1
        else:
            raise TargetUnusable(f"GET /admin/devices/{{id}} answered {response.status_code}")
    if missing and _post(client, missing) == 409:
        raise FleetMismatch(f"{MISMATCH} (devices appeared while registering)")
    return len(missing), known


def register_fleet(
    client: TargetClient,
    fleet: Fleet,
    *,
    chunk: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ProvisionResult:
    """Register every device of ``fleet``; devices the target already has must match exactly."""
    created = known = 0
    devices = fleet.devices
    for start in range(0, len(devices), chunk):
        part = devices[start : start + chunk]
        if _post(client, part) == 201:
            created += len(part)
        else:
            new, old = _resolve_conflict(client, part)
            created += new
            known += old
        if progress is not None:
            progress(len(part))
    return ProvisionResult(created, known)


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
    from sim.profiles import load_profile
    from sim.profiles.provision import profile_fleet, register_by_call

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
