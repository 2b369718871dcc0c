"""``compare.json`` (``fleetbench.compare/1``), typed: algorithms side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, NotRequired, TypedDict, cast

__all__ = [
    "COMPARE_SCHEMA",
    "CompareAccount",
    "CompareAlgorithm",
    "CompareFile",
    "CompareParameters",
    "CompareTarget",
    "Machine",
    "Spread",
    "figure_of",
]

COMPARE_SCHEMA: Final = "fleetbench.compare/1"


class Spread(TypedDict):
    median: float
    min: float
    max: float


class CompareAccount(TypedDict):
    """Over MQTT: the readings of an algorithm's rounds, summed: sent (published), acknowledged
    (PUBACKed), received (distinct readings the target holds, by its ``/admin/stats``),
    unacknowledged (held, their PUBACK cut off by a round's stop), lost (acknowledged, not
    held). ``available``: every round had the target's own count (a profile's ``[stats]``).
    ``exact``: in every round sent = acknowledged + unacknowledged + never arrived (cut off at
    the stop), none lost."""

    rounds: int
    sent: int
    acknowledged: int
    received: int
    unacknowledged: int
    lost: int
    available: bool
    exact: bool


class CompareAlgorithm(TypedDict):
    """One algorithm's medians over the rounds, their spread, and what they mean for capacity.
    The end-to-end figures are there only with ``end_to_end``."""

    sign_us: float
    verify_us: float
    raw_verify_us: float
    naive_verify_us: NotRequired[float]
    cached_verify_us: float
    token_bytes: int
    e2e_rps: NotRequired[float]
    e2e_p50_us: NotRequired[float]
    e2e_p99_us: NotRequired[float]
    # Over MQTT (parameters.transport "mqtt"), instead of e2e_*: CONNECT to CONNACK (the
    # broker's auth of the token) and PUBLISH to PUBACK (a reading stored), per s and latency.
    mqtt_connect_per_s: NotRequired[float]
    mqtt_connect_p50_us: NotRequired[float]
    mqtt_connect_p99_us: NotRequired[float]
    mqtt_publish_per_s: NotRequired[float]
    mqtt_publish_p50_us: NotRequired[float]
    mqtt_publish_p99_us: NotRequired[float]
    telemetry: NotRequired[CompareAccount]
    server_verify_us: NotRequired[float]
    generator_cpu_percent: NotRequired[float]
    generator_saturated: NotRequired[bool]
    spread: dict[str, Spread]
    capacity_cores: dict[str, float]
    ratio_to_baseline: dict[str, float]


class Machine(TypedDict):
    model: str
    count: int | None


class CompareParameters(TypedDict):
    micro_budget_s: float
    devices: NotRequired[int]
    duration_s: NotRequired[float]
    interval_s: NotRequired[float]
    # The endpoint of the end-to-end rounds; None: each profile's default_endpoint, else all.
    endpoint: NotRequired[str | None]
    # How the devices spoke (absent in files from before MQTT: http); over MQTT, whether each
    # reading opened its own session (per-reading: a CONNECT per reading) or one was held.
    transport: NotRequired[Literal["http", "mqtt"]]
    mqtt_session: NotRequired[Literal["held", "per-reading"]]


class CompareTarget(TypedDict):
    """Where one algorithm's end-to-end rounds ran: a fresh embedded target (``url`` None), or
    the service given by ``--target ALG=URL``, spoken to through ``profile``."""

    url: str | None
    embedded: bool
    profile: str
    mqtt_port: NotRequired[int]  # --transport mqtt: the --target's broker port


class CompareFile(TypedDict):
    """``compare.json`` of ``fleetbench compare`` (``fleetbench.compare/1``)."""

    schema: Literal["fleetbench.compare/1"]
    machine: Machine
    versions: dict[str, str]
    parameters: CompareParameters
    baseline: str
    repeat: int
    interleaved: bool
    end_to_end: bool
    # The micro figures (sign_us ... token_bytes, capacity_cores) are local: this machine's
    # cryptography under our own verifier (target/), whatever service the end-to-end rounds hit.
    micro_scope: NotRequired[Literal["local"]]
    targets: NotRequired[dict[str, CompareTarget]]  # per algorithm, with end_to_end
    started_at: float
    duration_s: float
    algorithms: dict[str, CompareAlgorithm]


def figure_of(entry: CompareAlgorithm, name: str, default: float = 0.0) -> float:
    """One of an algorithm's figures by name (the figure lists are data: MICRO_FIGURES, ...)."""
    return cast(Mapping[str, float], entry).get(name, default)
