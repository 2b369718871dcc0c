"""``attack.json`` (``fleetbench.attack/1``), typed: every case, its verdict and severity."""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

from sim.outcomes import Outcome

__all__ = [
    "ATTACK_SCHEMA",
    "AttackCase",
    "AttackCounts",
    "AttackFile",
    "AttackRun",
    "AttackSeverity",
    "AttackTransport",
    "AttackVerdict",
]

ATTACK_SCHEMA: Final = "fleetbench.attack/1"


AttackVerdict = Literal[
    "refused",
    "mismatch",
    "skipped",
    "accepted",
    "server_error",
    "transport_error",
    "fetched",
    "weak_secret",
    "finding",
    "valid",  # a genuine credential served, as it should be (the MQTT attack's controls)
    "refused_valid",  # a genuine credential refused
]
AttackTransport = Literal["http", "mqtt"]
# How bad an accepted case is (through a profile; "" when the case passed or is not graded).
AttackSeverity = Literal["", "info", "low", "medium", "high", "critical"]


class AttackCase(TypedDict):
    name: str
    family: str
    description: str
    expected: str
    got: str
    verdict: AttackVerdict
    status: int
    reason: str
    severity: NotRequired[AttackSeverity]
    impact: NotRequired[str]  # what an acceptance lets an attacker do
    transport: NotRequired[AttackTransport]  # absent: http
    outcome: NotRequired[Outcome]  # over MQTT: the run's outcome the verdict stands for


class AttackCounts(TypedDict):
    cases: int
    refused: int
    mismatch: int
    skipped: int
    accepted: int
    server_error: int
    transport_error: int
    fetched: int
    weak_secret: int
    finding: NotRequired[int]
    valid: NotRequired[int]
    refused_valid: NotRequired[int]


class AttackRun(TypedDict):
    """The corpus against one target."""

    target: str
    profile: NotRequired[str]  # the target profile's name (absent: fleetbench, before profiles)
    transport: NotRequired[AttackTransport]  # absent: http
    broker: NotRequired[str]  # over MQTT: mqtt://host:port (target: the token issuer's URL)
    embedded: bool
    token_alg: str
    passed: bool
    failures: list[str]
    counts: AttackCounts
    still_serving: bool
    listener_requests: int
    elapsed_s: float
    cases: list[AttackCase]


class AttackFile(TypedDict):
    """``attack.json`` of ``fleetbench attack`` (``fleetbench.attack/1``)."""

    schema: Literal["fleetbench.attack/1"]
    created_at: float
    strict: bool
    passed: bool
    runs: list[AttackRun]
