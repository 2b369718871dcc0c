"""A telemetry reading ``{"seq", "ts", "values"}``: the one check HTTP and MQTT intake share."""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

from target.errors import TargetError
from target.jsontext import has_lone_surrogate

__all__ = ["MAX_READING_BYTES", "InvalidReading", "Reading", "check_reading", "parse_reading"]

MAX_READING_BYTES = 16 * 1024
MAX_VALUES = 64
MAX_SEQ = 2**63 - 1


class InvalidReading(TargetError):
    """A reading that is not a JSON object of the agreed shape; ``description`` says why."""

    def __init__(self, description: str, *, json_error: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.json_error = json_error  # not JSON at all (HTTP answers 400, not 422)


class Reading(NamedTuple):
    seq: int
    ts: float
    values: dict[str, Any]


def check_reading(body: Any) -> Reading:
    """The reading ``body`` (parsed JSON) states, or :class:`InvalidReading`."""
    if not isinstance(body, dict):
        raise InvalidReading("body must be a JSON object")
    seq, ts, values = body.get("seq"), body.get("ts"), body.get("values", {})
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise InvalidReading("seq must be an integer from 0 to 2^63-1")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise InvalidReading("ts must be a finite number")
    if not isinstance(values, dict) or len(values) > MAX_VALUES:
        raise InvalidReading(f"values must be an object of at most {MAX_VALUES}")
    for name, value in values.items():
        if len(name) > 64 or not isinstance(value, int | float | str | bool | None):
            raise InvalidReading("values must map short names to scalars")
        if isinstance(value, str) and len(value) > 256:
            raise InvalidReading("a value string is longer than 256")
    return Reading(seq, float(ts), values)


def parse_reading(data: bytes) -> Reading:
    """A reading from raw bytes (an MQTT payload): UTF-8 JSON, at most 16 KiB, checked."""
    if len(data) > MAX_READING_BYTES:
        raise InvalidReading(f"reading larger than {MAX_READING_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidReading("reading is not valid JSON", json_error=True) from e
    if has_lone_surrogate(text, value):
        raise InvalidReading("reading holds a lone surrogate escape", json_error=True)
    return check_reading(value)
