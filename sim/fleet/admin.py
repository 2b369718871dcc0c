"""A fleet registered with a target through the bulk admin API, resuming over a fleet the target
already knows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.errors import FleetMismatch, TargetUnusable
from sim.fleet.client import TargetClient
from sim.fleet.model import Device, Fleet
from sim.untrusted import shown

__all__ = ["DEFAULT_CHUNK", "ProvisionResult", "register_fleet"]

DEFAULT_CHUNK = 1000
MISMATCH = "fleet file does not match the target"


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
