"""The profile's ``[mqtt]`` section in use: which broker, and what a device's CONNECT and topics
carry. Transport-free: the MQTT client that sends them lives with its caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sim.errors import ConfigError
from sim.profiles.model import Mqtt
from sim.profiles.mqtt_settings import MqttSettings

__all__ = ["Credentials", "broker_host", "credentials", "mqtt_settings", "topic"]


def _host_of(url: str) -> str:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise ConfigError(f"--target {url!r} names no host for the MQTT broker")
    return host


def broker_host(mqtt: Mqtt, target_url: str, override: str | None = None) -> str:
    """The broker's host: ``override`` (the command line's), else the profile's, which must be
    ``--target``'s own host (a shared profile cannot send device tokens to a host of its
    choosing), else ``--target``'s host."""
    if override:
        return override
    host = _host_of(target_url)
    named = mqtt.host
    if named is not None and named.strip("[]").lower() != host.lower():
        raise ConfigError(
            f"the profile's mqtt.host {named} is not --target's host {host}: a profile may not "
            "send tokens to another host; pass --mqtt-host to choose the broker yourself"
        )
    return host


@dataclass(frozen=True)
class Credentials:
    """What one CONNECT carries: the token sits in the password or in the username."""

    client_id: str
    username: str | None
    password: str | None = field(repr=False)


def credentials(mqtt: Mqtt, device_id: str, token: str | None) -> Credentials:
    """The CONNECT fields of ``device_id`` presenting ``token`` (None: no token at all)."""
    client_id = mqtt.client_id.format(device_id=device_id)
    if mqtt.token_in == "username":
        return Credentials(client_id, token, None)
    return Credentials(client_id, mqtt.username.format(device_id=device_id), token)


def topic(template: str, device_id: str, other_device_id: str = "") -> str:
    return template.format(device_id=device_id, other_device_id=other_device_id)


def mqtt_settings(mqtt: Mqtt, host: str, port: int | None = None) -> MqttSettings:
    """The devices' connection settings from a profile's ``[mqtt]`` (``host`` from
    :func:`broker_host`; ``port`` the command line's, else the profile's)."""
    bad, denied = mqtt.refusal_codes()
    in_username = mqtt.token_in == "username"
    return MqttSettings(
        host=host,
        port=port or mqtt.port,
        tls=mqtt.tls,
        ca_file=mqtt.ca_file,
        protocol=mqtt.protocol,
        client_id=mqtt.client_id,
        username="{token}" if in_username else mqtt.username,
        password="" if in_username else "{token}",
        telemetry_topic=mqtt.telemetry_topic,
        qos=mqtt.qos,
        bad_credentials=tuple(bad),
        not_authorised=tuple(denied),
    )
