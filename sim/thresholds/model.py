"""What a threshold is: metrics, row selectors, limits, and a check measured against a run."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal, get_args

from sim.artefacts.smoke_file import SmokeCheck
from sim.artefacts.summary_file import RequestRow
from sim.outcomes import Outcome

LatencyMetric = Literal["p50_us", "p95_us", "p99_us", "max_us"]
CountMetric = Literal[
    "rejected_as_expected",
    "refused_valid",
    "accepted_invalid",
    "server_error",
    "transport_error",
    "telemetry_lost",
]
# Limits on the load the run delivered (sim.account.offered): on the whole run only.
LoadMetric = Literal["max_shortfall", "max_in_flight"]
Metric = Literal[LatencyMetric, "error_ratio", "min_rps", CountMetric, LoadMetric]
LATENCY_METRICS: tuple[LatencyMetric, ...] = get_args(LatencyMetric)
LatencyKind = Literal["service", "corrected"]
LATENCY_KINDS: tuple[LatencyKind, ...] = get_args(LatencyKind)
COUNT_METRICS: tuple[CountMetric, ...] = get_args(CountMetric)
LOAD_METRICS: tuple[LoadMetric, ...] = get_args(LoadMetric)
METRICS: tuple[Metric, ...] = get_args(Metric)
METRIC_NAMES: dict[str, Metric] = {m: m for m in METRICS}
# Outcomes that are a failure of the target or the path to it (a refusal of a forgery, or of an
# expired token, is what we want).
ERROR_OUTCOMES: tuple[Outcome, ...] = (
    "refused_valid",
    "accepted_invalid",
    "server_error",
    "transport_error",
)
# Security and integrity: on for every run, at 0, whatever a thresholds file says.
ALWAYS_ON: tuple[CountMetric, ...] = ("accepted_invalid", "server_error", "telemetry_lost")


def _bound(metric: Metric) -> Literal["max", "min"]:
    return "min" if metric == "min_rps" else "max"


def unit(metric: Metric) -> str:
    if metric in LATENCY_METRICS:
        return " µs"
    return " req/s" if metric == "min_rps" else ""


def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


# An endpoint class, not a name: every endpoint the profile protects with a token (any row that is
# not a token call), whatever the API calls them. The shipped thresholds use it, so they fit any
# target profile.
PROTECTED = "protected"
TOKEN_CALLS = "token *"
# The token calls a profile with a token endpoint makes, as request rows name them.
TOKEN_ROWS = ("token client_credentials", "token jwt-bearer", "token refresh")


def endpoint_matches(endpoint: str, pattern: str) -> bool:
    """``pattern`` is the class ``protected``, a name or a glob."""
    if pattern == PROTECTED:
        return not fnmatch.fnmatchcase(endpoint, TOKEN_CALLS)
    return fnmatch.fnmatchcase(endpoint, pattern)


@dataclass(frozen=True)
class Selector:
    """Which request rows a threshold measures; each pattern list matches if any pattern does."""

    endpoint: tuple[str, ...] = ("*",)
    scenario: tuple[str, ...] = ("*",)
    alg: tuple[str, ...] = ("*",)
    outcome: Outcome | None = None  # latency of, or rate of, only this outcome's requests
    # Which latency a latency limit reads: the service time, or the open model's corrected
    # latency (from each request's intended send time; rows without a schedule have only their
    # service time, which it then reads).
    latency: LatencyKind = "service"

    def matches(self, row: RequestRow) -> bool:
        return self.names_endpoint(row["endpoint"]) and all(
            any(fnmatch.fnmatchcase(value, p) for p in patterns)
            for value, patterns in ((row["scenario"], self.scenario), (row["alg"], self.alg))
        )

    def names_endpoint(self, endpoint: str) -> bool:
        return any(endpoint_matches(endpoint, p) for p in self.endpoint)

    def names_scenario(self, scenario: str) -> bool:
        return any(fnmatch.fnmatchcase(scenario, p) for p in self.scenario)

    def describe(self) -> str:
        parts = [
            f"{key}={','.join(patterns)}"
            for key, patterns in (
                ("scenario", self.scenario),
                ("endpoint", self.endpoint),
                ("alg", self.alg),
            )
            if patterns != ("*",)
        ]
        if self.outcome:
            parts.append(f"outcome={self.outcome}")
        if self.latency != "service":
            parts.append(f"latency={self.latency}")
        return " ".join(parts) or "every row"


@dataclass(frozen=True)
class Threshold:
    """One limit: ``metric`` at most (or, for ``min_rps``, at least) ``limit``."""

    name: str
    metric: Metric
    limit: float
    selector: Selector | None = None  # None: the whole run
    line: int = 0  # where in the file (0: built in)
    always_on: bool = False

    @property
    def bound(self) -> Literal["max", "min"]:
        return _bound(self.metric)

    @property
    def rule(self) -> str:
        """``p99_us <= 500000``"""
        op = ">=" if self.bound == "min" else "<="
        return f"{self.metric} {op} {_number(self.limit)}"

    @property
    def title(self) -> str:
        return f"{self.name}: {self.rule}"

    def passes(self, value: float) -> bool:
        return value >= self.limit if self.bound == "min" else value <= self.limit


@dataclass(frozen=True)
class Measured:
    """One measured value: ``where`` is ``run`` or a row's ``scenario endpoint``."""

    where: str
    value: float
    passed: bool


@dataclass(frozen=True)
class Check:
    """A threshold evaluated against one run's summary."""

    threshold: Threshold
    alg: str
    measured: tuple[Measured, ...]
    note: str = ""  # why nothing was measured

    @property
    def passed(self) -> bool:
        return bool(self.measured) and all(m.passed for m in self.measured)

    @property
    def worst(self) -> Measured | None:
        if not self.measured:
            return None
        pick = min if self.threshold.bound == "min" else max
        return pick(self.measured, key=lambda m: m.value)

    def breaches(self) -> list[str]:
        """One line per breach: measured value, limit and where."""
        if not self.measured:
            return [f"{self.threshold.title}: {self.note}"]
        t = self.threshold
        op = "<" if t.bound == "min" else ">"
        return [
            f"{t.name}: {t.metric} {_number(m.value)}{unit(t.metric)} {op} {_number(t.limit)}"
            f"{unit(t.metric)} at {m.where}"
            for m in self.measured
            if not m.passed
        ]

    def record(self) -> SmokeCheck:
        """The check as the smoke's ``summary.json`` lists it (``checks[]``)."""
        return {
            "alg": self.alg,
            "threshold": self.threshold.title,
            "metric": self.threshold.metric,
            "limit": self.threshold.limit,
            "bound": self.threshold.bound,
            "passed": self.passed,
            "always_on": self.threshold.always_on,
            "note": self.note,
            "measured": [
                {"where": m.where, "value": m.value, "passed": m.passed} for m in self.measured
            ],
        }


def _number(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) and not value.is_integer() else f"{value:.0f}"


@dataclass(frozen=True)
class Thresholds:
    source: str
    thresholds: tuple[Threshold, ...] = field(default_factory=tuple)
