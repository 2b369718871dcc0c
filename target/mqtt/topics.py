"""Which topics a device may use: its own, under ``devices/{its id}/``."""

from __future__ import annotations

__all__ = ["is_own_filter", "is_own_topic", "telemetry_topic"]

PREFIX = "devices/"


def telemetry_topic(device_id: str) -> str:
    return f"{PREFIX}{device_id}/telemetry"


def is_own_topic(device_id: str, topic: str) -> bool:
    """A PUBLISH topic (no wildcards) under the device's own ``devices/{id}/``."""
    own = f"{PREFIX}{device_id}/"
    return (
        topic.startswith(own)
        and len(topic) > len(own)
        and "+" not in topic
        and "#" not in topic
        and "\x00" not in topic
    )


def is_own_filter(device_id: str, topic_filter: str) -> bool:
    """A SUBSCRIBE filter that can only match the device's own topics: ``devices/{id}/`` spelt
    out, wildcards only after it (``devices/+/...`` or ``#`` would reach other devices)."""
    own = f"{PREFIX}{device_id}/"
    return (
        topic_filter.startswith(own) and len(topic_filter) > len(own) and "\x00" not in topic_filter
    )
