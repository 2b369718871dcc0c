"""The profile's shape: frozen msgspec Structs that refuse unknown keys.

Templates are strings with ``{placeholder}`` fields (see :data:`PLACEHOLDER`); a string that is
exactly one placeholder of a number (``"{now + ttl}"``) renders as that number.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from sim.profiles.mqtt_settings import MqttProtocol

__all__ = [
    "PLACEHOLDER",
    "Devices",
    "Endpoint",
    "Metrics",
    "Mqtt",
    "Present",
    "Profile",
    "Provision",
    "Refusal",
    "Refusals",
    "Revoke",
    "Rotate",
    "Stats",
    "Token",
    "placeholders",
]

# What a template may name: the device, its credentials, the token, time, the reading's seq.
PLACEHOLDER = re.compile(
    r"^(?:device_id|other_device_id|secret|token|assertion|refresh_token|seq|ts|now|exp|ttl"
    r"|n(?::0?\d+d)?|now\s*[+-]\s*(?:ttl|\d+))$"
)
_FIELD = re.compile(r"\{([^{}]*)\}")


def placeholders(template: str) -> list[str]:
    """The ``{...}`` fields of one template string."""
    return [m.group(1).strip() for m in _FIELD.finditer(template)]


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


# A call's extra HTTP headers (an API key, say): values may come from ${VAR} and are secrets,
# so no Struct that holds them shows them in its repr.
Headers = dict[str, str]


def _no_headers(struct: msgspec.Struct) -> str:
    shown = ", ".join(
        f"{name}={getattr(struct, name)!r}"
        for name in struct.__struct_fields__
        if name not in ("headers", "json", "form", "secret", "body")
    )
    return f"{type(struct).__name__}({shown})"


CredentialKind = Literal["secret", "key", "none"]


class Devices(_Struct, frozen=True):
    id_pattern: str = "dev-{n:05d}"
    credentials: CredentialKind = "key"
    alg: str = "ES256"  # the per-device key's algorithm when credentials = "key"


class Provision(_Struct, frozen=True):
    via: Literal["admin", "call", "none", "file"] = "admin"
    method: str = "POST"
    path: str = ""
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    batch: int = 1
    ok: list[int] = msgspec.field(default_factory=lambda: [201])
    exists: list[int] = msgspec.field(default_factory=lambda: [409])
    file: str | None = None  # via = "file": a fleet JSON or a CSV of id,secret
    headers: Headers = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return _no_headers(self)


class Refresh(_Struct, frozen=True):
    path: str
    method: str = "POST"
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    token_field: str = "access_token"
    headers: Headers = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return _no_headers(self)


class Token(_Struct, frozen=True):
    source: Literal["endpoint", "minted"] = "endpoint"
    # endpoint: the request and where the answer keeps the token and its lifetime
    method: str = "POST"
    path: str = "/auth/token"
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    # Used instead of form/json when the device holds a key: an RFC 7523 assertion it signs.
    assertion_form: dict[str, str] | None = None
    token_field: str | None = "access_token"
    token_header: str | None = None
    expires_in_field: str | None = None  # else the token's own exp
    refresh_token_field: str | None = None
    refresh: Refresh | None = None
    ok: list[int] = msgspec.field(default_factory=lambda: [200])
    # minted: the key and the claims template
    alg: str = "HS256"
    secret: str | None = None
    private_key_file: str | None = None
    claims: dict[str, Any] = msgspec.field(default_factory=dict)
    jose_header: dict[str, str] = msgspec.field(default_factory=dict)  # extra JOSE header fields
    headers: Headers = msgspec.field(default_factory=dict)  # the token call's HTTP headers
    ttl_s: int = 3600
    short_ttl_s: int = 10  # minted tokens of the expiry scenario

    def __repr__(self) -> str:  # the secret (from ${VAR}) never reaches a log or a traceback
        return f"Token(source={self.source!r}, path={self.path!r}, alg={self.alg!r})"


class Present(_Struct, frozen=True):
    header: str = "Authorization"
    format: str = "Bearer {token}"
    query: str | None = None  # send the token as this query parameter instead of a header


class Endpoint(_Struct, frozen=True):
    name: str
    path: str
    method: str = "GET"
    body: dict[str, Any] | None = None
    weight: int = 1
    ok: list[int] = msgspec.field(default_factory=lambda: [200])
    headers: Headers = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return _no_headers(self)


class Refusal(_Struct, frozen=True):
    status: list[int]
    header: str | None = None  # a header whose value must match ``pattern``
    pattern: str | None = None
    body: str | None = None  # a regex the body must match


class Refusals(_Struct, frozen=True):
    # rfc6750: the class is read from WWW-Authenticate error/error_description (our target);
    # classes: from the tables below, first match wins in the order missing, expired,
    # invalid, forbidden.
    read: Literal["rfc6750", "classes"] = "classes"
    missing: Refusal | None = None
    expired: Refusal | None = None
    invalid: Refusal | None = None
    forbidden: Refusal | None = None


class Stats(_Struct, frozen=True):
    """The API's own count of the readings it received (``field``: a dotted path into its JSON
    answer, ``readings.received``), read before and after a run to reconcile telemetry."""

    path: str
    field: str
    method: str = "GET"
    headers: Headers = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return _no_headers(self)


class Metrics(_Struct, frozen=True):
    verify_time: str | None = None  # a Prometheus histogram name (its _sum and _count)


class Rotate(_Struct, frozen=True):
    """The API's key rotation call (``--scenario rotation-storm``), sent with the admin key."""

    path: str
    method: str = "POST"
    ok: list[int] = msgspec.field(default_factory=lambda: [200])
    jwks: str | None = None  # where the API publishes its verification keys, if it does


class Revoke(_Struct, frozen=True):
    """The API's device revocation call (``--scenario revocation``), sent with the admin key;
    ``bound_s``: how long after its answer the API says every process refuses the device."""

    path: str  # with {device_id}
    method: str = "POST"
    ok: list[int] = msgspec.field(default_factory=lambda: [200])
    bound_s: float = 0.0


# The CONNACK codes of a credential refusal, in each protocol's own numbering.
MQTT_REFUSALS: dict[MqttProtocol, tuple[list[int], list[int]]] = {
    "3.1.1": ([4], [5]),  # bad user name or password; not authorised
    "5": ([0x86], [0x87]),
}


class Mqtt(_Struct, frozen=True):
    """How a device reaches the API's MQTT broker (``--transport mqtt``). ``host`` None: the
    host of ``--target``; a profile may name only that host (another one only from the command
    line, docs/security.md)."""

    host: str | None = None
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None  # a PEM bundle to verify the broker with (else the system's)
    protocol: MqttProtocol = "3.1.1"
    username: str = "{device_id}"
    client_id: str = "{device_id}"
    # Where the token goes: the CONNECT password, or the username with no password.
    token_in: Literal["password", "username"] = "password"
    bad_credentials: list[int] | None = None  # None: the protocol's (MQTT_REFUSALS)
    not_authorised: list[int] | None = None
    telemetry_topic: str = "devices/{device_id}/telemetry"
    acl_topic: str = "devices/{other_device_id}/telemetry"  # another device's: must be refused
    qos: int = 1
    connect_timeout_s: float = 10.0

    def refusal_codes(self) -> tuple[list[int], list[int]]:
        """(bad credentials, not authorised): the CONNACK codes that refuse a credential."""
        bad, denied = MQTT_REFUSALS[self.protocol]
        return self.bad_credentials or bad, self.not_authorised or denied


class Profile(_Struct, frozen=True):
    name: str
    leeway_s: float = 0.0
    # The endpoint a run calls when --endpoint names none; none: all of them, by weight.
    default_endpoint: str | None = None
    devices: Devices = msgspec.field(default_factory=Devices)
    provision: Provision = msgspec.field(default_factory=Provision)
    token: Token = msgspec.field(default_factory=Token)
    present: Present = msgspec.field(default_factory=Present)
    endpoints: list[Endpoint] = msgspec.field(default_factory=list)
    refusals: Refusals = msgspec.field(default_factory=Refusals)
    metrics: Metrics = msgspec.field(default_factory=Metrics)
    stats: Stats | None = None
    rotate: Rotate | None = None
    revoke: Revoke | None = None
    mqtt: Mqtt = msgspec.field(default_factory=Mqtt)
    source: str = ""  # where it was loaded from (set by the loader, not the file)
    reads: tuple[str, ...] = ()  # the environment variables it names (set by the loader)
    # Whether the file has an [mqtt] section (set by the loader): `mqtt` is filled either way,
    # with our target's contract, but only a profile that names its broker may drive another.
    has_mqtt: bool = False

    @property
    def minted(self) -> bool:
        return self.token.source == "minted"

    def endpoint(self, name: str | None) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def endpoint_names(self) -> list[str]:
        return [e.name for e in self.endpoints]
