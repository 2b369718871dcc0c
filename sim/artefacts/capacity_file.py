"""``capacity.json`` (``fleetbench.capacity/1``), typed: each algorithm's search, step by step."""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

from sim.artefacts.compare_file import CompareTarget, Machine
from sim.artefacts.summary_file import Saturated

__all__ = [
    "CAPACITY_SCHEMA",
    "CapacityAlgorithm",
    "CapacityFile",
    "CapacityParameters",
    "CapacityStep",
    "RateOf",
    "SecondOpinion",
    "StepPhase",
    "StepVerdict",
    "StepWorker",
]

CAPACITY_SCHEMA: Final = "fleetbench.capacity/1"


StepPhase = Literal["raise", "narrow"]
RateOf = Literal["requests", "connects", "publishes"]
# met; or what broke it: the corrected latency, the error budget, a target that did not take the
# rate (sent short of asked), no answers at all, acknowledged readings lost; or the generator was
# the limit (search ends).
StepVerdict = Literal["met", "latency", "errors", "shortfall", "no_answers", "lost", "generator"]


class CapacityStep(TypedDict):
    """One step of a capacity search: one open-model run at ``rate_rps`` (its summary.json in
    ``results``). Latencies are corrected (from each request's intended send time) unless named
    ``service``; ``objective_us`` is the objective's percentile of them."""

    phase: StepPhase
    rate_rps: float
    sent_rps: float
    shortfall: float
    objective_us: float | None
    corrected_p50_us: float | None
    corrected_p99_us: float | None
    service_p99_us: float | None
    requests: int
    errors: int  # answered requests not ok (server errors, refused valid tokens, transport)
    error_ratio: float
    # Readings acknowledged (a PUBACK, a 202) that the target does not hold: a step with any is
    # not met (verdict "lost"). Absent in files from before it was counted.
    lost: NotRequired[int]
    limit: Saturated | None  # the open-model account's limit
    met: bool  # the objective and the error budget held (generator-limited steps: a floor)
    verdict: StepVerdict
    results: str | None
    # Over remote workers (--master): each worker's share of the step, from the run's cluster.
    workers: NotRequired[list[StepWorker]]


class StepWorker(TypedDict):
    """One remote worker's part of a capacity step: its devices, the sends it scheduled and the
    requests it timed, and whether it was the limit (saturated CPU, or its own send lag past
    the open model's limit: its devices' latency then measures the worker)."""

    id: str
    host: str
    devices: int
    sent: int
    requests: int
    saturated: bool
    lagging: bool


class SecondOpinion(TypedDict):
    """The independent open-model client (``sim.run.openprobe``, asyncio, no Locust) at the knee, on
    a fresh embedded target with as many connections as the search had devices: its corrected
    latency at the objective's percentile, and who broke the objective there by its figure
    (``generator``: this client met it, so the search's break was Locust's; ``target``: it broke
    it too)."""

    rate_rps: float
    connections: int
    duration_s: float
    sent: int
    ok: int
    objective_us: float
    corrected_p99_us: float
    service_p99_us: float
    broken_by: Literal["generator", "target"]


class CapacityAlgorithm(TypedDict):
    """One algorithm's search: the highest rate that met the objective (None: not even the start
    rate), the corrected p99 and the objective's percentile there, the knee (the lowest rate that
    broke it), devices at the fleet's reporting interval, and every step in the order run.
    ``floor``: the target took at least ``max_rate``, but the search could not say how much more
    (the generator was the limit, or the objective still held at the last rate tried)."""

    max_rate: float | None
    p99_us_at_max: float | None
    objective_us_at_max: float | None
    knee_rps: float | None
    devices_at_interval: int | None
    generator_limited: bool
    floor: bool
    steps: list[CapacityStep]
    second_opinion: SecondOpinion | None
    # A service's own fleet (--target): the unjudged runs before the first step in which its
    # devices fetched the tokens every step then keeps (0: none needed, or the embedded target).
    login_rounds: NotRequired[int]


class CapacityParameters(TypedDict):
    slo: str  # as given: p99=50ms
    percentile: str  # p50, p90, p95, p99, p99_9
    limit_us: float
    error_budget: float  # a share: 0.001 is 0.1 %
    devices: int
    step_duration_s: float
    start_rate_rps: float
    raise_steps: int
    narrow_steps: int
    interval_s: float  # the real fleet's reporting interval
    endpoint: str | None
    # How the devices spoke (absent in files from before MQTT: http), and what the searched
    # rate counts: HTTP requests, or over MQTT CONNECTs (a session per reading: the broker's
    # auth) or QoS 1 PUBLISHes (sessions held).
    transport: NotRequired[Literal["http", "mqtt"]]
    rate_of: NotRequired[RateOf]
    mqtt_session: NotRequired[Literal["held", "per-reading"]]


class CapacityFile(TypedDict):
    """``capacity.json`` of ``fleetbench capacity`` (``fleetbench.capacity/1``)."""

    schema: Literal["fleetbench.capacity/1"]
    machine: Machine
    versions: dict[str, str]
    parameters: CapacityParameters
    targets: dict[str, CompareTarget]
    started_at: float
    duration_s: float
    algorithms: dict[str, CapacityAlgorithm]
