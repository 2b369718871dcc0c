"""``summary.json`` (``fleetbench.summary/1``), typed: one run's figures, section by section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, NotRequired, TypedDict, cast

from sim.outcomes import OUTCOMES, Outcome, Scenario

__all__ = [
    "SUMMARY_SCHEMA",
    "Cluster",
    "ClusterWorker",
    "CpuFacts",
    "DistributionPoint",
    "Expiry",
    "ExpiryEvents",
    "ExpiryStorm",
    "FleetFacts",
    "GeneratorCpu",
    "LatencyDistribution",
    "LatencyPoint",
    "LatencySeries",
    "Load",
    "OpenModel",
    "OutcomeCounts",
    "Percentiles",
    "Phase",
    "PhaseFigures",
    "Phases",
    "ProcessCpu",
    "ProcessTreeCpu",
    "ProfileFacts",
    "ReconnectStorm",
    "Refusal",
    "RequestRow",
    "RunFacts",
    "RunParameters",
    "RunSection",
    "Saturated",
    "ScenarioMix",
    "Server",
    "StageSecond",
    "StageStep",
    "StagesSection",
    "StormBurst",
    "Storms",
    "Summary",
    "TargetCpu",
    "TargetFacts",
    "Telemetry",
    "TimelineRow",
    "TokenRetries",
    "Totals",
    "Verdict",
    "VerifyCost",
    "counts_of",
    "outcome_counts",
]

SUMMARY_SCHEMA: Final = "fleetbench.summary/1"


Phase = Literal["measured", "setup"]
Saturated = Literal["target", "generator", "both"]


class Percentiles(TypedDict):
    """A latency histogram's figures in µs; only ``count`` when it is empty."""

    count: int
    p50: NotRequired[float]
    p90: NotRequired[float]
    p95: NotRequired[float]
    p99: NotRequired[float]
    p99_9: NotRequired[float]
    min: NotRequired[float]
    mean: NotRequired[float]
    max: NotRequired[float]


class OutcomeCounts(TypedDict, total=False):
    """A count per outcome (``outcomes``: all six; elsewhere only those that occurred)."""

    ok: int
    rejected_as_expected: int
    refused_valid: int
    accepted_invalid: int
    server_error: int
    transport_error: int


class ProcessCpu(TypedDict):
    """One process of a sampled tree. ``pid``, the wait and memory come from psutil only."""

    role: str
    cpu_percent_mean: float
    cpu_percent_max: float
    saturated: bool
    pid: NotRequired[int]
    cpu_wait_percent_mean: NotRequired[float]
    peak_rss_bytes: NotRequired[int]
    starved: NotRequired[bool]


class ProcessTreeCpu(TypedDict):
    """A process tree's CPU over the load window (``sim.account.generator.ProcessTreeSampler``)."""

    processes: list[ProcessCpu]
    samples: int
    cores: int
    cpu_percent_per_core_mean: float
    saturated: bool
    starved: bool
    saturation_threshold_percent: float
    saturation_rule: str
    peak_rss_bytes: int


class GeneratorCpu(ProcessTreeCpu):
    """The Locust process tree, and Locust's exit code."""

    exit_code: int | None


class TargetCpu(TypedDict):
    """The target's CPU: by psutil (embedded), from its ``/metrics``, or not available."""

    available: bool
    source: NotRequired[Literal["psutil", "metrics"]]
    processes: NotRequired[list[ProcessCpu]]
    samples: NotRequired[int]
    cores: NotRequired[int]
    cpu_percent_per_core_mean: NotRequired[float]
    saturated: NotRequired[bool]
    starved: NotRequired[bool]
    saturation_threshold_percent: NotRequired[float]
    saturation_rule: NotRequired[str]
    peak_rss_bytes: NotRequired[int]


class CpuFacts(TypedDict):
    model: str
    count: int | None
    target_cpus: list[int] | None
    generator_cpus: list[int] | None
    # A loopback target and an unpinned generator: the sentence saying so (issue 26); else null.
    shares_machine: NotRequired[str | None]


class TargetFacts(TypedDict):
    url: str
    embedded: bool
    token_alg: str | None
    issuer: str | None


class RunParameters(TypedDict):
    """Every ``fleetbench run`` option (``RunConfig.parameters``); never the admin key."""

    target: str | None
    fleet: str | None
    devices: int
    alg: str
    token_alg: str
    token_ttl: int | None
    leeway: int
    scenarios: dict[str, int]
    endpoint: str | None  # None: all of the profile's endpoints, by weight
    interval_s: float
    refresh: str
    bad_ratio: float
    duration_s: float
    spawn_rate: float | None
    workers: int
    results: str | None
    pin: bool
    generator_cpus: list[int] | None
    profile: NotRequired[str]  # the target profile as asked for: a shipped name or a file
    rate_rps: NotRequired[float]  # the open model's asked rate (--rate); absent: closed model
    stages: NotRequired[str]  # --stages as given; absent: none
    master: NotRequired[bool]  # over remote workers (fleetbench run --master)
    bind: NotRequired[str]
    expect_workers: NotRequired[int]
    worker_wait_s: NotRequired[int]
    storm: NotRequired[str | None]  # the storm scenario run (sim.account.storms), or None
    backoff: NotRequired[bool]  # --backoff: jittered exponential backoff on failed token calls
    warmup_s: NotRequired[float]  # capacity steps: the unjudged first seconds; absent: none
    target_workers: NotRequired[int]  # the embedded target's worker processes (when above 1)
    revoke_percent: NotRequired[float]  # --scenario revocation: the share of devices revoked
    revocation_bound_s: NotRequired[float]  # --revocation-bound, when given
    transport: NotRequired[Literal["http", "mqtt"]]  # --transport mqtt only; absent: http
    mqtt_port: NotRequired[int]  # --mqtt-port: a --target's broker
    # --mqtt-session per-reading: a session per reading (CONNECT, PUBLISH, DISCONNECT); absent:
    # held across the readings
    mqtt_session: NotRequired[Literal["held", "per-reading"]]


class FleetFacts(TypedDict):
    devices: int
    kind: str
    created: int
    already_registered: int
    provision_s: float


class ProfileFacts(TypedDict):
    """The target profile a run spoke through (``sim/profiles``)."""

    name: str
    source: str
    endpoints: NotRequired[list[str]]  # the protected endpoints' names
    token_endpoint: NotRequired[bool]  # False: the devices mint their own tokens


class RunFacts(TypedDict):
    """What the runner knows of a run before its figures (``build_summary(run=...)``)."""

    fleetbench: str
    versions: dict[str, str]
    cpu: CpuFacts
    target: TargetFacts
    parameters: RunParameters
    fleet: FleetFacts
    locust_workers: int
    profile: NotRequired[ProfileFacts]


class RunSection(RunFacts):
    started_at: float | None
    stopped_at: float | None
    elapsed_s: float
    interrupted: bool
    results: NotRequired[str]  # the results folder, once written
    # closed: each device waits for its answer, then its interval; open: --rate, on a schedule
    model: NotRequired[Literal["closed", "open"]]


class Verdict(TypedDict):
    passed: bool
    overloaded: bool
    label: Literal["PASS", "PASS (overloaded)", "FAIL"]
    failures: list[str]


class Totals(TypedDict):
    requests: int
    started: int
    in_flight_at_stop: int
    rps: float
    devices: int
    users_without_device: int


class RequestRow(TypedDict):
    endpoint: str
    scenario: str
    alg: str
    count: int
    rps: float
    outcomes: OutcomeCounts
    latency_us: Percentiles
    latency_by_outcome_us: dict[Outcome, Percentiles]
    # Open model only: from each paced request's intended send time (its count: those requests)
    corrected_latency_us: NotRequired[Percentiles]


class Refusal(TypedDict):
    endpoint: str
    scenario: str
    status: int
    reason: str
    count: int


class ScenarioMix(TypedDict):
    weight: int
    expected_share: float
    runs: int
    share: float


class TokenRetries(TypedDict):
    retries: int
    backoff_s: float
    devices_failed: int
    devices_recovered: int


class Expiry(TypedDict):
    expirations: int
    refreshes: int
    devices: int
    devices_expired: int
    devices_recovered: int
    refused_valid: int
    refresh_latency_us: Percentiles


class Telemetry(TypedDict):
    """Readings sent and acknowledged; the target's own count when it has ``/admin/stats``."""

    available: bool
    devices: int
    sent: int
    acknowledged: int
    received: NotRequired[int]
    distinct: NotRequired[int]
    lost: NotRequired[int]
    duplicated: NotRequired[int]
    unacknowledged: NotRequired[int]


class VerifyCost(TypedDict):
    count: int
    mean_us: float


class Server(TypedDict):
    """The target's ``/metrics`` over the run. Not ``available`` (with the ``reason``) when the
    profile names no ``[metrics] verify_time`` or ``/metrics`` has no such histogram."""

    available: bool
    reason: NotRequired[str]
    verify_metric: NotRequired[str]  # the histogram read (the profile's [metrics] verify_time)
    verify: NotRequired[dict[str, VerifyCost]]
    verifications: NotRequired[dict[str, int]]
    token_errors: NotRequired[dict[str, int]]
    tokens_issued: NotRequired[dict[str, int]]


class Load(TypedDict):
    offered_rps: float | None
    delivered_rps: float
    shortfall: float | None
    in_flight_at_stop: int
    in_flight_when_stopping: int
    saturated: Saturated | None
    overloaded: bool
    notes: list[str]
    offered_requests: float | None
    delivered_requests: int
    mean_device_active_s: float
    devices_ready: int
    devices_never_ready: NotRequired[int]  # started, never past setup (issue 26)
    target_cpu_percent: float | None
    generator_cpu_percent: float | None
    target_cpu_wait_percent: float | None
    generator_cpu_wait_percent: float
    rule: str
    line: NotRequired[str]  # set from the rest by sim.account.offered.load_line


class OpenModel(TypedDict):
    """The open model's account (``--rate``, ``sim.account.open_model``)."""

    rate_rps: float
    rate_per_device_rps: float
    asked_requests: float
    sent_requests: int
    sent_rps: float
    shortfall: float
    mean_device_active_s: float
    corrected_latency_us: Percentiles
    service_latency_us: Percentiles
    send_lag_us: Percentiles
    generator_lag_us: Percentiles
    generator_lag_limit_us: int
    limit: Saturated | None
    notes: list[str]
    line: NotRequired[str]  # set from the rest by sim.account.open_model.open_line


class StageStep(TypedDict):
    start_t: float  # Unix s
    end_t: float
    duration_s: float
    start: float  # devices, or req/s fleet-wide, at the step's start
    end: float  # at its end (the step's target)


class StageSecond(TypedDict):
    t: int
    stage: int  # index into steps
    asked: float  # devices reporting, or req/s, the stages asked for at that second


class StagesSection(TypedDict):
    """Load stages (``--stages``, ``sim.shape.stages``)."""

    kind: Literal["devices", "rate"]
    text: str
    steps: list[StageStep]
    timeline: list[StageSecond]


class TimelineRow(OutcomeCounts):
    """One second: ``t`` and a count per outcome seen in it."""

    t: int


class PhaseFigures(TypedDict):
    requests: int
    outcomes: OutcomeCounts
    first_t: int | None
    last_t: int | None
    rps: NotRequired[float]  # measured only


class Phases(TypedDict):
    measured: PhaseFigures
    setup: PhaseFigures


class LatencyPoint(TypedDict):
    t: int
    count: int
    p50: float
    p90: float
    p99: float
    max: float


class LatencySeries(TypedDict):
    endpoint: str
    phase: Phase
    points: list[LatencyPoint]


class DistributionPoint(TypedDict):
    percentile: float
    latency_us: float


class LatencyDistribution(TypedDict):
    endpoint: str
    phase: Phase
    count: int
    points: list[DistributionPoint]


class ExpiryEvents(TypedDict):
    t: int
    expirations: int
    recoveries: int
    refreshes: int


class ClusterWorker(TypedDict):
    """One remote worker of a ``fleetbench run --master`` run, as the master saw it."""

    id: str  # Locust's client id (host name and a random tag)
    host: str
    pid: int | None  # its Locust process on that host
    late: bool  # joined a running test: it was given no devices
    devices: int  # devices the master dealt it: each device to exactly one worker
    requests: int  # outcomes it reported (its share of totals.requests)
    requests_per_s: float
    cpu_percent_mean: float  # of one core, its own process (sampled every 0.5 s)
    cpu_percent_max: float
    cpu_samples: int
    saturated: bool
    peak_rss_bytes: int
    lost: bool
    lost_as: str | None  # "missing" (no heartbeat), "quit" or "no final report"
    lost_at_s: float | None  # seconds into the run when the master noticed
    returned_at_s: float | None  # a missing worker that reported again (paused, not gone)
    account_complete: bool  # its final report arrived: all it sent is in the totals
    # Seconds into the run when the master did not hear from it: from its last report before
    # the loss to the end, or to its return. Without its final report, what it sent in that
    # time is missing from the totals.
    affected_s: list[float] | None
    lost_device_ids: list[str]  # its devices when lost (the first 100), [] otherwise
    users: NotRequired[int]  # the most users Locust gave it at once: its devices' cap
    # Sealed messages from it that did not open (or came twice): dropped, its account incomplete.
    unauthentic: NotRequired[int]
    # The open model's (0 and None in a closed-loop run): the paced sends it reported (they sum
    # to open_model.sent_requests), its generator's scheduling lag p99, and whether that lag
    # reached open_model.generator_lag_limit_us (it, not the target, was behind).
    scheduled_sends: NotRequired[int]
    corrected_requests: NotRequired[int]  # answers timed from their intended send (corrected)
    generator_lag_p99_us: NotRequired[float | None]
    lagging: NotRequired[bool]


class ClusterRefused(TypedDict):
    """A peer the master did not admit: it never proved it holds the cluster key."""

    id: str  # the id it gave (host name and a random tag)
    host: str
    reason: str


class Cluster(TypedDict):
    """A run over remote workers: how the fleet was dealt and what became of each worker."""

    workers: list[ClusterWorker]
    fleet_devices: int
    dealt: int  # devices handed to a worker; the rest found no user
    degraded: bool  # a worker was lost: the totals miss what it sent after its last report
    lost_workers: int
    refused: NotRequired[list[ClusterRefused]]  # given no users, no devices, no settings


class StormBurst(TypedDict):
    """The token requests devices made between their storm token's refusal and their next ``ok``
    (the refresh burst on the token endpoint; none when the profile mints its tokens)."""

    requests: int
    outcomes: OutcomeCounts
    refusals: int  # token requests not answered with a token (refused, 5xx, no answer)
    latency_us: Percentiles
    first_t: int | None  # Unix s of the burst's first and last token request
    last_t: int | None
    peak_rps: int  # the most token requests of the burst answered in one second


class MqttRow(TypedDict):
    """One MQTT exchange over the run: ``mqtt connect`` (CONNECT to CONNACK: the broker's
    authentication) or ``mqtt publish`` (PUBLISH to PUBACK)."""

    count: int
    outcomes: OutcomeCounts
    latency_us: Percentiles


class MqttSection(TypedDict):
    """``--transport mqtt``: the devices' sessions, their reconnects by cause, and the
    broker's CONNACK codes."""

    connect: MqttRow
    publish: MqttRow
    # Sessions that ended without the device asking, by why: expiry_close (at or after the
    # token's exp: the close the broker owes), broker_close (before it: an end of stream or a
    # DISCONNECT), network_error (a reset or timeout).
    closes: dict[str, int]
    reconnects: int  # CONNECTs after a device's first one
    connack_codes: dict[str, int]  # CONNACK code (or "none": no CONNACK) -> count
    resent_acknowledged: int  # QoS 1 readings acknowledged only after a reconnect (sent again)


class ExpiryStorm(TypedDict):
    """``expiry-storm``: the fleet's tokens of one lifetime expiring together, and the recovery."""

    devices: int  # devices that held a storm token (their first)
    expires_at: float | None  # Unix s: the earliest ``exp`` of those tokens
    expiry_window_s: float | None  # latest minus earliest ``exp``: how together they expired
    devices_refused: int  # devices whose storm token was refused for expiry
    devices_recovered: int  # ... and that were then served ``ok`` again
    time_to_recover_s: float | None  # expires_at to the last device's first ok; None: not all
    device_recover_us: Percentiles  # per device: from its token's exp to its first ok again
    backoff: bool
    burst: StormBurst
    # --transport mqtt: the fleet's CONNECTs between its sessions' close and its next ok (the
    # reconnect burst on the broker: peak_rps is its connects per second).
    connect_burst: NotRequired[StormBurst]


class ReconnectStorm(TypedDict):
    """``reconnect-storm``: the embedded target stopped and started again on the same database
    mid-run; every device cut off re-authenticates when it comes back."""

    down_at: float | None  # Unix s: the target was stopped
    up_at: float | None  # ... and answered again
    outage_s: float | None
    devices: int  # devices cut off (a request with no answer or a 5xx during the outage)
    devices_recovered: int  # ... and served ok again afterwards
    time_to_recover_s: float | None  # up_at to the last such device's first ok; None: not all
    device_recover_us: Percentiles  # per device: from up_at to its first ok again
    acknowledged_lost: int | None  # acknowledged readings the target does not hold (must be 0)
    backoff: bool
    burst: StormBurst  # the re-authentication: token requests from cut-off to first ok
    # --transport mqtt: the fleet's CONNECTs from its sessions' loss to their return.
    connect_burst: NotRequired[StormBurst]


class RotationStorm(TypedDict):
    """``rotation-storm``: the signing key rotated mid-run while the devices keep using the
    tokens they hold and renew them as they would (sim.account.rotation)."""

    via: str  # how the key was rotated: admin (embedded), profile, or command
    started_at: float | None  # Unix s: the rotation call or command was sent / started
    rotated_at: float | None  # ... and answered or finished: the moment times count from
    old_kids: list[str]  # the kids devices held before the rotation
    new_kids: list[str]  # kids first held after it (one, for one rotation)
    grace_s: float | None  # the old key's grace period, if the API said (ours does)
    devices: int  # devices that held a token
    devices_renewed: int  # ... that came to hold one by a new key
    time_to_all_new_s: float | None  # rotated_at to the last device's first new-key token
    first_new_key_accepted_s: float | None  # rotated_at to the API's first ok of one
    jwks: str | None  # the JWKS path watched, if the API publishes one
    jwks_new_kid_s: float | None  # rotated_at to the JWKS first listing a new kid
    # A probe device asks the token call and presents to the API on new connections, every
    # 50 ms after the rotation: when it was first issued, and the API first accepted, a token by
    # the new key (false: the profile mints its tokens, or has no endpoint without a body).
    probed: bool
    new_key_issued_s: float | None
    new_key_accepted_s: float | None
    refused_valid: int  # valid tokens refused in the run (a correct API: 0)
    refused_valid_old_key: int  # ... of those, tokens by an old key: refused within the grace
    refused_valid_new_key: int


class Storms(TypedDict, total=False):
    """The storm scenarios a run had (``--scenario expiry-storm``, ``reconnect-storm`` or
    ``rotation-storm``)."""

    expiry: ExpiryStorm
    reconnect: ReconnectStorm
    rotation: RotationStorm


class Revocation(TypedDict):
    """``--scenario revocation``: K % of the devices revoked mid-run; each keeps presenting the
    token it held, on a new connection per request (spread over the API's processes), and
    every acceptance after the API's stated bound is ``accepted_invalid``
    (sim.account.revocation)."""

    via: str  # admin (our contract) or profile
    bound_s: float  # the API's stated bound: later acceptances are accepted_invalid
    devices: int  # devices revoked
    revoked_at: float | None  # Unix s: the first revoke call answered
    revoke_call_us: Percentiles  # how long each revoke call took to answer
    probes: int  # the revoked devices' requests that started after their revocation
    refused: int  # ... refused
    accepted: int  # ... accepted (within the bound or not)
    late_acceptances: int  # accepted though started after revocation + bound: accepted_invalid
    devices_refused: int  # revoked devices seen refused after their revocation
    devices_late: int  # revoked devices accepted after the bound at least once
    # Per revoked device seen refused: from its revoke call's answer to the answer of the last
    # request (started after it) that was still accepted; 0 when none was.
    time_to_refuse_us: Percentiles
    time_to_refuse_max_s: float | None
    # Each revoked device asks the token call once, past the bound: a token issued is an
    # accepted_invalid (0 with a minted-token profile: there is no token call).
    token_requests: int
    tokens_issued: int
    passed: bool  # no late acceptance or token, every revoked device seen refused, p99 in bound


class Summary(TypedDict):
    """``summary.json`` of ``fleetbench run`` (``fleetbench.summary/1``)."""

    schema: Literal["fleetbench.summary/1"]
    run: RunSection
    verdict: Verdict
    totals: Totals
    outcomes: OutcomeCounts
    requests: list[RequestRow]
    refusals: list[Refusal]
    mint_us: dict[str, Percentiles]
    scenarios: dict[Scenario, ScenarioMix]
    token_retries: TokenRetries
    expiry: Expiry | None
    corpus: dict[str, dict[str, int]] | None
    telemetry: Telemetry
    server: Server
    generator: GeneratorCpu
    target_cpu: TargetCpu
    load: Load
    timeline: list[TimelineRow]
    setup_timeline: list[TimelineRow]
    phases: Phases
    latency_timeline: list[LatencySeries]
    latency_distribution: list[LatencyDistribution]
    expiry_timeline: list[ExpiryEvents]
    open_model: NotRequired[OpenModel]  # the open model's runs only (--rate)
    corrected_latency_distribution: NotRequired[list[LatencyDistribution]]  # the same
    stages: NotRequired[StagesSection]  # staged runs only (--stages)
    cluster: NotRequired[Cluster]  # runs over remote workers only (fleetbench run --master)
    storms: NotRequired[Storms | None]  # storm scenarios (sim.account.storms); null without one
    revocation: NotRequired[Revocation]  # --scenario revocation only (sim.account.revocation)
    mqtt: NotRequired[MqttSection]  # --transport mqtt only (sim.account.mqtt)


def counts_of(row: TimelineRow | ExpiryEvents) -> dict[str, int]:
    """A per-second row's counts by name, ``t`` left out (a chart draws them by name)."""
    counts = cast(Mapping[str, int], row)
    return {name: count for name, count in counts.items() if name != "t"}


def outcome_counts(counts: OutcomeCounts) -> dict[Outcome, int]:
    """The counts present as a plain mapping (to sum, or go through), in OUTCOMES order."""
    return {o: counts[o] for o in OUTCOMES if o in counts}
