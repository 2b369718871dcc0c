"""Scenario names and weights: ``verification``, ``mixed`` or ``issuance=1,verification=8,...``."""

from __future__ import annotations

from typing import Literal, get_args

from sim.errors import ConfigError
from sim.outcomes import SCENARIOS, Scenario

__all__ = [
    "ENDPOINTS",
    "ENDPOINT_PATHS",
    "MIXED",
    "REFRESH_MODES",
    "SCENARIOS",
    "Endpoint",
    "RefreshMode",
    "Scenario",
    "parse_scenarios",
]

Endpoint = Literal["telemetry", "config", "data"]
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)
# Method and path of each endpoint a device calls (``{id}`` is the device's id).
ENDPOINT_PATHS: dict[Endpoint, tuple[str, str]] = {
    "telemetry": ("POST", "/devices/{id}/telemetry"),
    "config": ("GET", "/devices/{id}/config"),
    "data": ("GET", "/api/data"),
}
RefreshMode = Literal["on-expiry", "proactive"]
REFRESH_MODES: tuple[RefreshMode, ...] = get_args(RefreshMode)

# A fleet mostly in steady state, with some token traffic, expiry and bad tokens.
MIXED: dict[Scenario, int] = {"issuance": 1, "verification": 6, "expiry": 2, "rejection": 1}


def parse_scenarios(text: str) -> dict[Scenario, int]:
    """Weights by scenario, only those above zero."""
    text = text.strip()
    if text == "mixed":
        return dict(MIXED)
    weights: dict[Scenario, int] = {}
    for part in text.split(","):
        name, sep, weight_text = part.strip().partition("=")
        if name not in SCENARIOS:
            raise ConfigError(
                f"unknown scenario {name!r}: use mixed, or weights of {', '.join(SCENARIOS)}"
            )
        try:
            weight = int(weight_text) if sep else 1
        except ValueError as e:
            raise ConfigError(f"scenario weight for {name} must be a whole number") from e
        if weight < 0:
            raise ConfigError(f"scenario weight for {name} must be 0 or more")
        scenario: Scenario = name  # checked against SCENARIOS above
        weights[scenario] = weight
    weights = {name: weight for name, weight in weights.items() if weight > 0}
    if not weights:
        raise ConfigError("at least one scenario needs a weight above zero")
    return weights
