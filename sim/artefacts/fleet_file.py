"""The fleet file (``fleetbench.fleet/1``), typed: each device's id and credentials."""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

__all__ = ["FLEET_SCHEMA", "FleetDeviceEntry", "FleetFile"]

FLEET_SCHEMA: Final = "fleetbench.fleet/1"


class FleetDeviceEntry(TypedDict):
    """One device; ``secret`` devices have only ``id`` and ``secret``."""

    id: str
    secret: str
    alg: NotRequired[str]
    private_key: NotRequired[str | None]  # PEM
    public_key: NotRequired[dict[str, str] | None]  # JWK


class FleetFile(TypedDict):
    """A fleet file of ``fleetbench provision`` (``fleetbench.fleet/1``), mode 0600."""

    schema: Literal["fleetbench.fleet/1"]
    kind: str
    created_at: NotRequired[float]  # files written before it was kept still load
    devices: list[FleetDeviceEntry]
