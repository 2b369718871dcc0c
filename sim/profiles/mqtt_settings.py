"""How devices reach an MQTT broker: where, with which identity and password, on which topic,
at which QoS, and what the broker's CONNACK codes mean.

One small frozen dataclass, filled from our embedded target's contract (the defaults) or from
a profile's ``[mqtt]`` section for another broker; it crosses to the Locust side as a plain
dict (:meth:`MqttSettings.to_dict`, :meth:`MqttSettings.from_dict`). It lives with the
profiles, below the devices, so a profile can build it without importing upwards.

CONNACK codes are MQTT 3.1.1's return codes (section 3.2.2.3) and MQTT 5's reason codes
(section 3.2.2.2): a refusal of the credential is judged as HTTP's 401 (expected for a bad,
expired or revoked token, else a valid token refused), "not authorised" as a 403, "server
unavailable" as a 503, and a socket closed without any CONNACK as no answer at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = [
    "ACCEPTED",
    "MQTT_PROTOCOLS",
    "MQTT_SESSIONS",
    "TRANSPORTS",
    "MqttProtocol",
    "MqttSessions",
    "MqttSettings",
    "Transport",
]

Transport = Literal["http", "mqtt"]
TRANSPORTS: tuple[Transport, ...] = ("http", "mqtt")
# How long a device's session lasts: "held" across its readings (the steady state: one CONNECT
# per token lifetime), or "per-reading": a session opened for each reading (CONNECT, PUBLISH,
# DISCONNECT, as a device that sleeps between readings), so every reading costs one CONNECT's
# token check, the auth cost of a broker.
MqttSessions = Literal["held", "per-reading"]
MQTT_SESSIONS: tuple[MqttSessions, ...] = ("held", "per-reading")
MqttProtocol = Literal["3.1.1", "5"]
MQTT_PROTOCOLS: tuple[MqttProtocol, ...] = ("3.1.1", "5")
ACCEPTED = 0  # CONNACK 0: connection accepted (both versions)

# The HTTP status a CONNACK code is judged as (sim.outcomes speaks HTTP statuses).
_CREDENTIALS_STATUS = 401
_NOT_AUTHORISED_STATUS = 403
_UNAVAILABLE_STATUS = 503
_OTHER_REFUSAL_STATUS = 400


@dataclass(frozen=True)
class MqttSettings:
    """The connection a device holds. Patterns name ``{device_id}``, ``{n}`` (the device's
    index) and, for ``password`` only, ``{token}``: the access token."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None  # with tls: a PEM bundle to verify the broker by (else the system's)
    protocol: MqttProtocol = "3.1.1"
    client_id: str = "{device_id}"
    username: str = "{device_id}"
    password: str = "{token}"  # where the token goes: the CONNECT password
    telemetry_topic: str = "devices/{device_id}/telemetry"
    qos: int = 1
    keepalive_s: int = 60
    # CONNACK codes that refuse the credential (3.1.1: 4 bad user name or password; 5: 0x86).
    bad_credentials: tuple[int, ...] = (4, 0x86)
    # CONNACK codes that refuse the identity (3.1.1: 5 not authorised; 5: 0x87).
    not_authorised: tuple[int, ...] = (5, 0x87)
    # CONNACK codes of a broker that cannot serve now (3.1.1: 3; 5: 0x88 unavailable, 0x89 busy).
    unavailable: tuple[int, ...] = (3, 0x88, 0x89)
    # The broker's CONNECT verify-time histogram on the target's /metrics (the server view of an
    # MQTT run); None: not exported.
    verify_metric: str | None = "fleetbench_mqtt_verify_seconds"

    def status(self, code: int | None) -> int:
        """The HTTP status a CONNACK code is judged as: 0 accepted is 200, a credential's
        refusal 401, not authorised 403, unavailable 503, any other refusal 400; ``None`` (the
        socket closed or timed out without a CONNACK) is 0, no answer."""
        if code is None:
            return 0
        if code == ACCEPTED:
            return 200
        if code in self.bad_credentials:
            return _CREDENTIALS_STATUS
        if code in self.not_authorised:
            return _NOT_AUTHORISED_STATUS
        if code in self.unavailable:
            return _UNAVAILABLE_STATUS
        return _OTHER_REFUSAL_STATUS

    @staticmethod
    def reason(code: int | None) -> str:
        """The refusal's class, as a reason in the account: ``connack_<code>``."""
        return "no_connack" if code is None else f"connack_{code}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, to cross into the Locust process."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MqttSettings:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**values)
