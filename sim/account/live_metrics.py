"""A command's runs as Prometheus metrics while they work: the live account, read by a custom
collector at each scrape, so the endpoint never keeps books of its own.

During a run's load the Locust master writes its account (histograms and counters, merged over
its workers) into the progress file (:meth:`sim.account.measure.Measurements.live_wire`);
a scrape reads the newest one. When the run ends the account becomes the very ``Measurements``
that ``summary.json`` was built from, so the final scrape shows exactly its totals. Runs one
after another (compare's rounds, capacity's steps, smoke's algorithms) add up: every counter
only grows over the command. See docs/metrics.md for the names.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hdrh.histogram import HdrHistogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from sim.account.generator import ProcessNow, ProcessTreeSampler
from sim.account.measure import Measurements
from sim.shape.stages import Stages

if TYPE_CHECKING:
    from sim.artefacts.summary_file import Verdict

__all__ = [
    "BUCKETS_S",
    "RUN_STAGES",
    "VERDICTS",
    "LiveAccount",
    "RunStage",
    "active",
    "asked_rate",
    "live_account",
    "tracking",
    "wait_for_final_scrape",
]

RunStage = Literal["idle", "starting", "provisioning", "load", "reporting", "done"]
RUN_STAGES: tuple[RunStage, ...] = ("idle", "starting", "provisioning", "load", "reporting", "done")
VerdictSoFar = Literal["pending", "pass", "pass_overloaded", "fail"]
VERDICTS: tuple[VerdictSoFar, ...] = ("pending", "pass", "pass_overloaded", "fail")
# Latency buckets in seconds: 100 µs (a verify on a quiet target) to a minute (a timeout).
BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_BUCKETS_US = tuple(round(b * 1_000_000) for b in BUCKETS_S)
ROW_LABELS = ["scenario", "endpoint", "alg", "outcome"]
PROCESS_LABELS = ["role", "pid"]
TOKEN_ENDPOINT_PREFIX = "token "  # the token calls' endpoint names (sim.device_tokens)

# Cumulative bucket counts (one per BUCKETS_S, then +Inf) and the sum in seconds.
_Buckets = tuple[list[int], float]


def _buckets(hist: HdrHistogram) -> _Buckets:
    """A histogram's counts at the bucket bounds, read from its counts array in one pass (its
    value iterator is about a hundred times slower). Each bound counts the values HdrHistogram
    holds as equal to it, so a bound is exact to its 3 significant digits."""
    counts = hist.counts[: hist.counts_len]
    cumulative: list[int] = []
    total = start = 0
    for bound_us in _BUCKETS_US:
        end = min(hist.get_counts_array_index(bound_us) + 1, len(counts))
        total += sum(counts[start:end])
        start = max(start, end)
        cumulative.append(total)
    count = hist.get_total_count()
    cumulative.append(count)
    return cumulative, hist.get_mean_value() * count / 1_000_000


def _add(into: dict[tuple[str, ...], _Buckets], key: tuple[str, ...], hist: HdrHistogram) -> None:
    counts, sum_s = _buckets(hist)
    if key in into:
        before, before_sum = into[key]
        counts = [a + b for a, b in zip(before, counts, strict=True)]
        sum_s += before_sum
    into[key] = counts, sum_s


def _histogram(
    name: str, documentation: str, labels: list[str], rows: dict[tuple[str, ...], _Buckets]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels, unit="seconds")
    bounds = [*(repr(b) for b in BUCKETS_S), "+Inf"]
    for key, (counts, sum_s) in sorted(rows.items()):
        family.add_metric(list(key), list(zip(bounds, counts, strict=True)), sum_s)
    return family


class LiveAccount(Collector):
    """The account of the command's runs so far, and a Prometheus collector reading it.

    The runner tells it where a run stands (:meth:`begin`, :meth:`stage`, :meth:`watch`,
    :meth:`finish`); a scrape, from the exporter's thread, reads it under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished: list[Measurements] = []
        self._live: Measurements | None = None
        self._progress: Path | None = None
        self._progress_mtime_ns = 0
        self._sampler: ProcessTreeSampler | None = None
        self._processes: list[ProcessNow] = []
        self._asked: Callable[[float], float | None] = lambda elapsed_s: None
        self._elapsed_s = 0.0
        self._stage: RunStage = "idle"
        self._verdicts: list[Verdict] = []
        self._closed = False
        self.final_scrape = threading.Event()  # set by the first collect after close()

    # -- what the runner tells it -----------------------------------------------------------

    def begin(self) -> None:
        """A run starts: its live figures start from nothing."""
        with self._lock:
            self._stage = "starting"
            self._live = None
            self._elapsed_s = 0.0
            self._asked = lambda elapsed_s: None

    def stage(self, stage: RunStage) -> None:
        with self._lock:
            self._stage = stage

    def load_started(self, asked: Callable[[float], float | None]) -> None:
        """The load begins: ``asked`` gives the rate it asks for so many seconds into it
        (:func:`asked_rate`)."""
        with self._lock:
            self._stage = "load"
            self._asked = asked

    def watch(self, progress_file: Path, sampler: ProcessTreeSampler) -> None:
        """Read the master's progress file and the generator's processes at each scrape."""
        with self._lock:
            self._progress = progress_file
            self._progress_mtime_ns = 0
            self._sampler = sampler

    def finish(self, measurements: Measurements, verdict: Verdict) -> None:
        """The run's final account: the one its ``summary.json`` was built from."""
        with self._lock:
            if self._sampler is not None:
                self._processes = self._sampler.processes_now()
            self._finished.append(measurements)
            self._verdicts.append(verdict)
            self._live = None
            self._progress = None
            self._sampler = None
            self._stage = "reporting"

    def abandon(self) -> None:
        """The run stopped without an account (an error): its live figures go."""
        with self._lock:
            self._live = None
            self._progress = None
            self._sampler = None

    def close(self) -> None:
        with self._lock:
            self._stage = "done"
            self._closed = True

    # -- what a scrape reads ----------------------------------------------------------------

    def _refresh(self) -> None:
        """The newest live account from the progress file (only when it changed)."""
        if self._sampler is not None:
            self._processes = self._sampler.processes_now()
        if self._progress is None:
            return
        with contextlib.suppress(OSError):
            mtime_ns = self._progress.stat().st_mtime_ns
            if mtime_ns == self._progress_mtime_ns:
                return
            try:
                data = json.loads(self._progress.read_text())
            except ValueError:
                return  # replaced atomically, but a reader may still race a rename on some FS
            self._progress_mtime_ns = mtime_ns
            if "account" in data:
                self._live = Measurements.from_wire(data["account"])
            if data.get("started") and data.get("t"):
                self._elapsed_s = float(data["t"]) - float(data["started"])

    def snapshot(self) -> list[Metric]:
        """The metrics now (a push reads them this way: it is not a scrape)."""
        with self._lock:
            self._refresh()
            accounts = [*self._finished, *([self._live] if self._live is not None else [])]
            return self._families(accounts)

    def collect(self) -> Iterable[Metric]:
        """A scrape: after :meth:`close`, the first one sets :attr:`final_scrape`."""
        closed = self._closed  # read before: the numbers then collected are the final ones
        families = self.snapshot()
        if closed:
            self.final_scrape.set()
        return families

    def _families(self, accounts: list[Measurements]) -> list[Metric]:
        requests = CounterMetricFamily(
            "fleetbench_requests",
            "Requests answered, by scenario, endpoint, token algorithm and outcome",
            labels=ROW_LABELS,
        )
        counts: defaultdict[tuple[str, ...], int] = defaultdict(int)
        service: dict[tuple[str, ...], _Buckets] = {}
        corrected: dict[tuple[str, ...], _Buckets] = {}
        lag: dict[str, dict[tuple[str, ...], _Buckets]] = {"send": {}, "generator": {}}
        issued: defaultdict[tuple[str, ...], int] = defaultdict(int)
        counters: defaultdict[str, int] = defaultdict(int)
        sent = answered = 0
        for account in accounts:
            for row, hist in account.latency.items():
                key = (row.scenario, row.endpoint, row.alg, row.outcome)
                counts[key] += hist.get_total_count()
                _add(service, key, hist)
                if row.endpoint.startswith(TOKEN_ENDPOINT_PREFIX) and row.outcome == "ok":
                    issued[(row.endpoint,)] += hist.get_total_count()
            for row, hist in account.corrected.items():
                _add(corrected, (row.scenario, row.endpoint, row.alg, row.outcome), hist)
            for name, hist in account.lag.items():
                if name in lag:
                    _add(lag[name], (), hist)
            for name, value in account.counters.items():
                counters[name] += value
            sent += account.started
        if self._live is not None:
            answered = sum(h.get_total_count() for h in self._live.latency.values())
        for labels, count in sorted(counts.items()):
            requests.add_metric(list(labels), count)
        families: list[Metric] = [
            requests,
            _histogram(
                "fleetbench_request_duration",
                "Service time: from sending a request to its answer",
                ROW_LABELS,
                service,
            ),
            _histogram(
                "fleetbench_corrected_request_duration",
                "Open model: from a request's intended send time to its answer",
                ROW_LABELS,
                corrected,
            ),
            _histogram(
                "fleetbench_send_lag",
                "Open model: how late each paced request went out after its intended time",
                [],
                lag["send"],
            ),
            _histogram(
                "fleetbench_generator_lag",
                "Open model: the generator's own share of each paced request's send lag",
                [],
                lag["generator"],
            ),
            CounterMetricFamily(
                "fleetbench_requests_sent", "Requests sent (answered or not yet)", value=sent
            ),
            GaugeMetricFamily(
                "fleetbench_requests_in_flight",
                "Requests of the running load sent and not yet answered",
                value=(self._live.started - answered) if self._live is not None else 0,
            ),
        ]
        asked = self._asked(self._elapsed_s) if self._stage == "load" else None
        families.append(
            GaugeMetricFamily(
                "fleetbench_asked_requests_per_second",
                "The request rate the running load asks for (NaN between loads)",
                value=float("nan") if asked is None else asked,
            )
        )
        tokens = CounterMetricFamily(
            "fleetbench_tokens_issued", "Access tokens issued to the devices", labels=["endpoint"]
        )
        for labels, count in sorted(issued.items()):
            tokens.add_metric(list(labels), count)
        families.append(tokens)
        for name, counter, documentation in (
            ("fleetbench_token_expirations", "expirations", "Held tokens found expired"),
            ("fleetbench_token_refreshes", "refreshes", "Tokens renewed before or at expiry"),
            ("fleetbench_token_retries", "token_retries", "Token calls retried"),
            ("fleetbench_devices_started", "devices_started", "Devices that began to run"),
            ("fleetbench_scheduled_sends", "scheduled_sends", "Open model: paced requests sent"),
        ):
            families.append(CounterMetricFamily(name, documentation, value=counters[counter]))
        families += self._process_families()
        families += self._state_families()
        return families

    def _process_families(self) -> list[Metric]:
        cpu = GaugeMetricFamily(
            "fleetbench_generator_cpu",
            "A generator process's CPU at the last sample, in cores (1 = one core busy)",
            labels=PROCESS_LABELS,
            unit="ratio",
        )
        saturated = GaugeMetricFamily(
            "fleetbench_generator_saturated",
            "1 when a generator process meets the saturation rule over the run so far",
            labels=PROCESS_LABELS,
        )
        for process in self._processes:
            labels = [process.role, str(process.pid)]
            cpu.add_metric(labels, process.cpu_percent / 100)
            saturated.add_metric(labels, float(process.saturated))
        return [cpu, saturated]

    def _state_families(self) -> list[Metric]:
        stage = StateSetMetricFamily("fleetbench_run_stage", "Where the command's run stands")
        stage.add_metric([], {name: name == self._stage for name in RUN_STAGES})
        verdict = StateSetMetricFamily("fleetbench_verdict", "The runs' verdict so far")
        so_far = self._verdict_so_far()
        verdict.add_metric([], {name: name == so_far for name in VERDICTS})
        runs = CounterMetricFamily(
            "fleetbench_runs_completed", "Runs finished and reported", value=len(self._verdicts)
        )
        return [stage, verdict, runs]

    def _verdict_so_far(self) -> VerdictSoFar:
        live = self._live
        if any(not v["passed"] for v in self._verdicts) or (
            live is not None
            and any(r.outcome == "accepted_invalid" for r in live.latency)  # always fatal
        ):
            return "fail"
        if not self._verdicts:
            return "pending"
        return "pass_overloaded" if any(v["overloaded"] for v in self._verdicts) else "pass"


def asked_rate(
    rate_rps: float | None, stages: Stages | None, interval_s: float, devices: int
) -> Callable[[float], float | None]:
    """The rate a load asks for ``elapsed_s`` into it: the open model's rate (or its rate
    stage), else each reporting device once per interval."""
    if rate_rps is not None:
        return lambda elapsed_s: rate_rps
    if stages is not None and stages.kind == "rate":
        return stages.value_at
    if interval_s <= 0:
        return lambda elapsed_s: None  # as fast as each device can: no rate is asked
    if stages is not None:
        return lambda elapsed_s: stages.value_at(elapsed_s) / interval_s
    return lambda elapsed_s: devices / interval_s


class _Inactive(LiveAccount):
    """No metrics asked for: every report is dropped."""

    def begin(self) -> None:
        pass

    def stage(self, stage: RunStage) -> None:
        pass

    def load_started(self, asked: Callable[[float], float | None]) -> None:
        pass

    def watch(self, progress_file: Path, sampler: ProcessTreeSampler) -> None:
        pass

    def finish(self, measurements: Measurements, verdict: Verdict) -> None:
        pass


_INACTIVE = _Inactive()
# The command's account, set for the length of the command: capacity, compare and smoke make
# their runs' configurations in several places, and each run reports here without all of them
# carrying it.
_ACCOUNT: ContextVar[LiveAccount] = ContextVar("fleetbench_live_account", default=_INACTIVE)


def live_account() -> LiveAccount:
    """The running command's account (an inactive one when no metrics were asked for)."""
    return _ACCOUNT.get()


def active() -> bool:
    """Whether the running command serves or pushes metrics."""
    return _ACCOUNT.get() is not _INACTIVE


@contextlib.contextmanager
def tracking(account: LiveAccount) -> Iterator[LiveAccount]:
    """Runs inside the block report to ``account``; it is closed on the way out."""
    token = _ACCOUNT.set(account)
    try:
        yield account
    finally:
        _ACCOUNT.reset(token)
        account.close()


def wait_for_final_scrape(account: LiveAccount, linger_s: float) -> bool:
    """After :meth:`LiveAccount.close`: wait up to ``linger_s`` for a scrape of the final
    numbers; True when one came."""
    return account.final_scrape.wait(linger_s)
