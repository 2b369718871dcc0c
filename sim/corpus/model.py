"""What a corpus case is: the forger's context, the forged request, the case and its expectation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sim.fleet.model import Device

Endpoint = Literal["config", "telemetry", "data"]


# What a case needs beyond a held token: a device path, the target's public key, a loopback
# listener for jku/x5u, a revoked device's token, a token of narrower scope; "attack_only" marks
# cases too heavy for load traffic (1 MiB per request measures the network, not auth).
Need = Literal[
    "device_path", "public_key", "listener", "revoked_token", "scoped_token", "attack_only"
]


@dataclass(frozen=True)
class ForgeContext:
    """What a forger knows: a genuine token, the target's algorithm, and who is asking.

    The optional fields are filled by ``fleetbench attack``: ``public_key`` is the target's
    verification key from its JWKS (for an HMAC target, a public key it holds for a device),
    ``listener_url`` a loopback listener the attack itself opened, ``revoked_token`` a genuine
    token of a device revoked since, ``scoped_token`` a genuine token with scope ``config:read``.
    """

    token: str
    token_alg: str
    device_id: str
    other_device_id: str
    public_key: Any = None
    listener_url: str | None = None
    revoked_token: str | None = None
    revoked_device_id: str | None = None
    scoped_token: str | None = None


@dataclass(frozen=True)
class Forged:
    """A request to send: its ``Authorization`` value (None: no header), the device path, and
    the endpoint (None: the caller's own choice)."""

    authorization: str | None
    device_id: str
    endpoint: Endpoint | None = None


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    description: str
    forge: Callable[[ForgeContext], Forged]
    expected_status: int
    expected_reasons: frozenset[str]
    needs: frozenset[Need] = frozenset()

    @property
    def needs_device_path(self) -> bool:  # meaningful only on /devices/{id}/... endpoints
        return "device_path" in self.needs


@dataclass(frozen=True)
class TokenContext:
    """What a forger at the token endpoint knows: its own devices' credentials (``device`` and
    ``other``, both with key pairs), a revoked one, the issuer, and a genuine access token."""

    issuer: str
    device: Device
    other: Device
    revoked: Device
    access_token: str


@dataclass(frozen=True)
class TokenForged:
    """A token request: the form, HTTP Basic credentials if any, and whether it is sent twice
    (a replay: the first answer must be 200, the second is judged)."""

    form: dict[str, str]
    basic: tuple[str, str] | None = field(default=None, repr=False)
    replay: bool = False


@dataclass(frozen=True)
class TokenCase:
    name: str
    description: str
    forge: Callable[[TokenContext], TokenForged]
    expected_status: int
    expected_errors: frozenset[str]
    family: str = "token_endpoint"
