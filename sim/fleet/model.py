"""A fleet: device ids with their credentials, made once and kept in a 0600 JSON file.

Fleet file (``fleetbench.fleet/1``), mode 0600 because it holds secrets and private keys::

    {"schema": "fleetbench.fleet/1", "kind": "ES256", "created_at": 1700000000.0,
     "devices": [{"id": "dev-00000", "secret": "...", "alg": "ES256",
                  "private_key": "-----BEGIN PRIVATE KEY-----...", "public_key": {JWK}}, ...]}

``kind`` is the device credential: a secret only (``secret``), or a secret plus a per-device key
pair for ``ES256``, ``EdDSA`` or ``RS256`` signed assertions.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms

from sim.artefacts.codec import ArtefactError, fleet_json, read_fleet
from sim.artefacts.fleet_file import FLEET_SCHEMA, FleetDeviceEntry, FleetFile
from sim.errors import FleetError
from target.jose.vocabulary import generate_private_key as _generate

__all__ = [
    "CREDENTIAL_KINDS",
    "FLEET_SCHEMA",
    "CredentialKind",
    "Device",
    "Fleet",
    "load_fleet",
    "make_fleet",
    "save_fleet",
]

CredentialKind = Literal["ES256", "EdDSA", "RS256", "secret"]
CREDENTIAL_KINDS: tuple[CredentialKind, ...] = get_args(CredentialKind)

_PYJWT = get_default_algorithms()


@dataclass(frozen=True)
class Device:
    """One virtual device and its credentials."""

    id: str
    secret: str = field(repr=False)
    alg: str | None = None  # assertion algorithm, None for a secret-only device
    private_pem: str | None = field(default=None, repr=False)
    public_jwk: dict[str, Any] | None = None

    def private_key(self) -> Any:
        """The parsed private key (parse once per device, outside any measured request)."""
        if self.private_pem is None:
            raise FleetError(f"device {self.id} has no key pair")
        return serialization.load_pem_private_key(self.private_pem.encode(), password=None)

    def registration(self) -> dict[str, Any]:
        """The entry for ``POST /admin/devices``."""
        entry: dict[str, Any] = {"id": self.id, "secret": self.secret}
        if self.public_jwk is not None:
            entry["public_key"] = self.public_jwk
            entry["alg"] = self.alg
        return entry

    def to_json(self) -> FleetDeviceEntry:
        data: FleetDeviceEntry = {"id": self.id, "secret": self.secret}
        if self.alg is not None:
            data["alg"] = self.alg
            data["private_key"] = self.private_pem
            data["public_key"] = self.public_jwk
        return data


@dataclass(frozen=True)
class Fleet:
    kind: CredentialKind
    devices: list[Device]
    created_at: float = 0.0

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)


def make_device(device_id: str, kind: CredentialKind) -> Device:
    secret = secrets.token_urlsafe(32)
    if kind == "secret":
        return Device(device_id, secret)
    private = _generate(kind)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    jwk: dict[str, Any] = json.loads(_PYJWT[kind].to_jwk(private.public_key()))
    return Device(device_id, secret, kind, pem, jwk)


def make_fleet(
    count: int,
    kind: CredentialKind,
    *,
    prefix: str = "dev",
    progress: Callable[[int], None] | None = None,
) -> Fleet:
    """``count`` new devices; ids carry a random run tag so fleets never collide on a target."""
    tag = secrets.token_hex(3)
    width = max(5, len(str(count - 1)))
    devices = []
    for index in range(count):
        devices.append(make_device(f"{prefix}-{tag}-{index:0{width}d}", kind))
        if progress is not None:
            progress(1)
    return Fleet(kind, devices, time.time())


def save_fleet(fleet: Fleet, path: Path) -> None:
    """Write the fleet file, mode 0600 from its first byte (it holds secrets and private keys)."""
    body: FleetFile = {
        "schema": FLEET_SCHEMA,
        "kind": fleet.kind,
        "created_at": fleet.created_at,
        "devices": [device.to_json() for device in fleet.devices],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(fleet_json(body))
    os.replace(tmp, path)


def load_fleet(path: Path) -> Fleet:
    try:
        body = read_fleet(path)
    except ArtefactError as e:
        raise FleetError(str(e)) from e
    kind = body["kind"]
    if kind not in CREDENTIAL_KINDS:
        raise FleetError(f"fleet file {path}: unknown kind")
    try:
        devices = [
            Device(
                d["id"],
                d["secret"],
                d.get("alg"),
                d.get("private_key"),
                d.get("public_key"),
            )
            for d in body["devices"]
        ]
    except (KeyError, TypeError) as e:
        raise FleetError(f"fleet file {path}: a device entry is incomplete") from e
    if not devices:
        raise FleetError(f"fleet file {path} has no devices")
    return Fleet(kind, devices, float(body.get("created_at", 0.0)))
