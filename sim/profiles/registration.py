"""A fleet the profile's way: ids from its pattern, devices from a file the API already knows
(our fleet JSON or a CSV of ``id,secret``), registration by the API's own call."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from sim.errors import FleetError, TargetUnusable
from sim.fleet.admin import ProvisionResult
from sim.fleet.client import TargetClient
from sim.fleet.model import Device, Fleet, load_fleet, make_device, make_fleet
from sim.profiles.http import render
from sim.profiles.model import Profile
from target.jose.algorithms import ASSERTION_ALGORITHMS

__all__ = ["first_devices", "profile_fleet", "read_devices_file", "register_by_call"]


def read_devices_file(path: Path) -> Fleet:
    """Our fleet file, or a CSV of ``id,secret`` (a header row ``id,secret`` is skipped)."""
    if path.suffix.lower() != ".csv":
        return load_fleet(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
    except OSError as e:
        raise FleetError(f"devices file {path} is not readable ({e.strerror})") from e
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["id", "secret"]:
        rows = rows[1:]
    devices = []
    for number, row in enumerate(rows, start=1):
        if len(row) != 2 or not row[0].strip():
            raise FleetError(f"devices file {path}: row {number} is not id,secret")
        devices.append(Device(row[0].strip(), row[1].strip()))
    if not devices:
        raise FleetError(f"devices file {path} has no devices")
    return Fleet("secret", devices)


def first_devices(fleet: Fleet, count: int) -> Fleet:
    """The first ``count`` devices of a devices file; more than it holds is a one-line error
    (running another fleet size than asked would measure something else without a word)."""
    if count > len(fleet.devices):
        raise FleetError(
            f"--devices {count} is more than the devices file holds ({len(fleet.devices)}):"
            f" give --devices {len(fleet.devices)} or fewer"
        )
    return Fleet(fleet.kind, fleet.devices[:count])


def profile_fleet(
    profile: Profile, count: int, progress: Callable[[int], None] | None = None
) -> Fleet:
    """``count`` new devices named by the profile's ``id_pattern``; a key pair each only when
    the profile's devices hold keys."""
    spec = profile.devices
    if profile.provision.via == "file" and profile.provision.file:
        return first_devices(read_devices_file(Path(profile.provision.file)), count)
    if spec.credentials == "key":
        kind = spec.alg if spec.alg in ASSERTION_ALGORITHMS else "ES256"
    else:
        kind = "secret"
    if profile.name == "fleetbench":
        return make_fleet(count, kind, progress=progress)  # type: ignore[arg-type]
    devices = []
    for index in range(count):
        devices.append(make_device(str(render(spec.id_pattern, {"n": index})), kind))  # type: ignore[arg-type]
        if progress is not None:
            progress(1)
    return Fleet(kind, devices)  # type: ignore[arg-type]


def register_by_call(client: TargetClient, profile: Profile, fleet: Fleet) -> ProvisionResult:
    """The API's own registration call, per device or ``batch`` devices at a time (a JSON body
    template with ``{device_id}`` and ``{secret}``; with batch > 1 the body is a list)."""
    spec = profile.provision
    created = known = 0
    devices = fleet.devices
    for start in range(0, len(devices), spec.batch):
        part = devices[start : start + spec.batch]
        bodies = [
            render(spec.json if spec.json is not None else spec.form, _values(d, start + i))
            for i, d in enumerate(part)
        ]
        path = str(render(spec.path, _values(part[0], start)))
        # The profile's headers (an admin API key, say) never follow a redirect elsewhere:
        # TargetClient.request follows none (sim.untrusted.fetch).
        if spec.form is not None and spec.batch == 1:
            response = client.request(spec.method, path, data=bodies[0], headers=spec.headers)
        else:
            body = bodies[0] if spec.batch == 1 else bodies
            response = client.request(
                spec.method,
                path,
                data=json.dumps(body),
                headers={**spec.headers, "Content-Type": "application/json"},
            )
        if response.status_code in spec.ok:
            created += len(part)
        elif response.status_code in spec.exists:
            known += len(part)
        else:
            raise TargetUnusable(f"{spec.method} {spec.path} answered {response.status_code}")
    return ProvisionResult(created, known)


def _values(device: Device, index: int) -> dict[str, object]:
    return {"device_id": device.id, "secret": device.secret, "n": index}
