"""Smoke thresholds: limits on a run's ``summary.json``, written in TOML, in the spirit of k6.

A file has an optional ``[run]`` table (limits on the whole run) and any number of
``[[threshold]]`` tables, each selecting request rows by ``endpoint``, ``scenario`` and ``alg``
(glob patterns, or lists of them) and optionally one ``outcome``, and naming limits on them::

    [run]
    error_ratio = 0.01

    [[threshold]]
    name = "protected endpoints"
    scenario = ["verification", "expiry"]
    outcome = "ok"
    p99_us = 500_000

Every limit becomes one :class:`Threshold`; evaluated against a summary it is one :class:`Check`,
measured on every matching row. ``accepted_invalid``, ``server_error`` and ``telemetry_lost`` are
always limited to 0 on the whole run: a file may restate that, never relax it.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

from sim.errors import ConfigError
from sim.outcomes import OUTCOMES, Outcome
from sim.scenarios import ENDPOINTS, SCENARIOS
from target.algorithms import ALG_NAMES

__all__ = [
    "ALWAYS_ON",
    "ERROR_OUTCOMES",
    "METRICS",
    "Check",
    "CheckRecord",
    "Measured",
    "Metric",
    "Selector",
    "Threshold",
    "Thresholds",
    "ThresholdsError",
    "default_thresholds",
    "evaluate",
    "load_thresholds",
    "parse_thresholds",
]

LatencyMetric = Literal["p50_us", "p95_us", "p99_us", "max_us"]
CountMetric = Literal[
    "rejected_as_expected",
    "refused_valid",
    "accepted_invalid",
    "server_error",
    "transport_error",
    "telemetry_lost",
]
# Limits on the load the run delivered (sim.load): on the whole run only.
LoadMetric = Literal["max_shortfall", "max_in_flight"]
Metric = Literal[LatencyMetric, "error_ratio", "min_rps", CountMetric, LoadMetric]
LATENCY_METRICS: tuple[LatencyMetric, ...] = get_args(LatencyMetric)
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
SELECTORS = ("name", "endpoint", "scenario", "alg", "outcome")
KNOWN_SCENARIOS = (*SCENARIOS, "setup")
KNOWN_ENDPOINTS = (*ENDPOINTS, "token client_credentials", "token jwt-bearer")
DEFAULT_FILE = "default_thresholds.toml"


class ThresholdsError(ConfigError):
    """A thresholds file that cannot be read, is not TOML, or names an unknown metric or value."""


class CheckRecord(TypedDict):
    """One check as written to the smoke's ``summary.json`` (``checks[]``)."""

    alg: str
    threshold: str
    metric: Metric
    limit: float
    bound: Literal["max", "min"]
    passed: bool
    always_on: bool
    note: str
    measured: list[dict[str, Any]]


def _bound(metric: Metric) -> Literal["max", "min"]:
    return "min" if metric == "min_rps" else "max"


def unit(metric: Metric) -> str:
    if metric in LATENCY_METRICS:
        return " µs"
    return " req/s" if metric == "min_rps" else ""


def _glob(text: str) -> bool:
    return any(c in text for c in "*?[")


@dataclass(frozen=True)
class Selector:
    """Which request rows a threshold measures; each pattern list matches if any pattern does."""

    endpoint: tuple[str, ...] = ("*",)
    scenario: tuple[str, ...] = ("*",)
    alg: tuple[str, ...] = ("*",)
    outcome: Outcome | None = None  # latency of, or rate of, only this outcome's requests

    def matches(self, row: dict[str, Any]) -> bool:
        return all(
            any(fnmatch.fnmatchcase(str(row[key]), p) for p in patterns)
            for key, patterns in (
                ("endpoint", self.endpoint),
                ("scenario", self.scenario),
                ("alg", self.alg),
            )
        )

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

    def record(self) -> CheckRecord:
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


# -- parsing ------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?")


def _line_of(text: str, table: str | None, index: int, key: str) -> int:
    """The 1-based line of ``key = ...`` in the ``index``-th ``[table]``/``[[table]]`` (None: top
    level), or 0 when it is not written that way (an inline table, say)."""
    key_line = re.compile(rf"""^\s*(["']?){re.escape(key)}\1\s*=""")
    current: str | None = None
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and "=" not in line.split("]", 1)[0]:
            current = header.group(2).strip("\"'")
            if table is None and current == key:  # an unknown table: its header
                return number
            seen[current] = seen.get(current, -1) + 1
            continue
        if current == table and (table is None or seen[table] == index) and key_line.match(line):
            return number
    return 0


class _Reader:
    """Turns one parsed file into thresholds; every complaint names the file and the line."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def fail(self, message: str, table: str | None, index: int, key: str) -> ThresholdsError:
        line = _line_of(self.text, table, index, key)
        where = f"{self.source} line {line}" if line else self.source
        return ThresholdsError(f"{where}: {message}")

    def read(self, data: dict[str, Any]) -> Thresholds:
        thresholds: list[Threshold] = []
        for key in data:
            if key not in ("run", "threshold"):
                raise self.fail(
                    f"unknown table or key {key!r}: use [run] and [[threshold]] tables",
                    None,
                    0,
                    key,
                )
        run = data.get("run", {})
        if not isinstance(run, dict):
            raise self.fail("run must be a table: [run]", None, 0, "run")
        thresholds += self._run_table(run)
        tables = data.get("threshold", [])
        if not isinstance(tables, list):
            raise self.fail("threshold must be tables: [[threshold]]", None, 0, "threshold")
        for index, table in enumerate(tables):
            thresholds += self._threshold_table(table, index)
        restated = {t.metric for t in thresholds if t.selector is None and t.metric in ALWAYS_ON}
        builtin = [
            Threshold("always on", metric, 0, None, 0, always_on=True)
            for metric in ALWAYS_ON
            if metric not in restated
        ]
        return Thresholds(self.source, (*builtin, *thresholds))

    def _limit(self, key: str, value: Any, table: str, index: int) -> float:
        metric = METRIC_NAMES[key]
        if metric in ALWAYS_ON and (isinstance(value, bool) or value != 0):
            raise self.fail(
                f"{key} is always 0 and cannot be raised or switched off", table, index, key
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key} must be a number, not {value!r}", table, index, key)
        if value < 0:
            raise self.fail(f"{key} must not be negative", table, index, key)
        if metric in ("error_ratio", "max_shortfall") and value > 1:
            raise self.fail(f"{key} is a share between 0 and 1", table, index, key)
        if metric in (*COUNT_METRICS, "max_in_flight") and not isinstance(value, int):
            raise self.fail(f"{key} is a count: a whole number", table, index, key)
        return float(value) if isinstance(value, float) else value

    def _unknown(self, key: str, table: str, index: int, allowed: tuple[str, ...]) -> None:
        where = "[run]" if table == "run" else f"[[threshold]] #{index + 1}"
        raise self.fail(
            f"unknown metric {key!r} in {where}; known: {', '.join(allowed)}", table, index, key
        )

    def _run_table(self, table: dict[str, Any]) -> list[Threshold]:
        allowed = tuple(m for m in METRICS if m not in LATENCY_METRICS)
        found = []
        for key, value in table.items():
            if key in LATENCY_METRICS:
                raise self.fail(
                    f"{key} needs request rows: put it in a [[threshold]]", "run", 0, key
                )
            if key not in allowed:
                self._unknown(key, "run", 0, allowed)
            limit = self._limit(key, value, "run", 0)
            line = _line_of(self.text, "run", 0, key)
            metric = METRIC_NAMES[key]
            always = metric in ALWAYS_ON
            found.append(
                Threshold("always on" if always else "run", metric, limit, None, line, always)
            )
        return found

    def _patterns(
        self, key: str, value: Any, index: int, known: tuple[str, ...] | None
    ) -> tuple[str, ...]:
        patterns = [value] if isinstance(value, str) else value
        if (
            not isinstance(patterns, list)
            or not patterns
            or not all(isinstance(p, str) and p for p in patterns)
        ):
            raise self.fail(
                f"{key} must be a pattern or a list of patterns", "threshold", index, key
            )
        for pattern in patterns:
            if known is not None and not _glob(pattern) and pattern not in known:
                raise self.fail(
                    f"unknown {key} {pattern!r}; known: {', '.join(known)}", "threshold", index, key
                )
        return tuple(patterns)

    def _threshold_table(self, table: Any, index: int) -> list[Threshold]:
        if not isinstance(table, dict):
            raise self.fail("threshold must be tables: [[threshold]]", None, 0, "threshold")
        name = table.get("name", f"threshold #{index + 1}")
        if not isinstance(name, str) or not name:
            raise self.fail("name must be text", "threshold", index, "name")
        outcome = table.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise self.fail(
                f"unknown outcome {outcome!r}; known: {', '.join(OUTCOMES)}",
                "threshold",
                index,
                "outcome",
            )
        selector = Selector(
            endpoint=self._patterns("endpoint", table.get("endpoint", "*"), index, KNOWN_ENDPOINTS),
            scenario=self._patterns("scenario", table.get("scenario", "*"), index, KNOWN_SCENARIOS),
            alg=self._patterns("alg", table.get("alg", "*"), index, ALG_NAMES),
            outcome=outcome,
        )
        allowed = tuple(m for m in METRICS if m != "telemetry_lost" and m not in LOAD_METRICS)
        found = []
        for key, value in table.items():
            if key in SELECTORS:
                continue
            if key in LOAD_METRICS:
                raise self.fail(
                    f"{key} is a limit on the whole run: put it in [run]", "threshold", index, key
                )
            if key not in allowed:
                self._unknown(key, "threshold", index, allowed + SELECTORS)
            limit = self._limit(key, value, "threshold", index)
            metric = METRIC_NAMES[key]
            if outcome is not None and metric not in (*LATENCY_METRICS, "min_rps"):
                raise self.fail(
                    f"outcome applies to latency and min_rps, not {key}; use another "
                    "[[threshold]] for it",
                    "threshold",
                    index,
                    "outcome",
                )
            line = _line_of(self.text, "threshold", index, key)
            found.append(Threshold(name, metric, limit, selector, line))
        if not found:
            raise self.fail(
                f"[[threshold]] #{index + 1} ({name}) names no metric", "threshold", index, "name"
            )
        return found


_AT = re.compile(
    r"^(?P<message>.*) \(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$"
)


def parse_thresholds(text: str, source: str = "thresholds") -> Thresholds:
    """Parse and check a thresholds file; a mistake is a one-line :class:`ThresholdsError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = _AT.match(str(e))
        if found is None:
            raise ThresholdsError(f"{source}: not valid TOML: {e}") from e
        if found.group("line"):
            where = f"line {found.group('line')}, column {found.group('column')}"
        else:
            where = f"line {max(1, len(text.splitlines()))} (end of file)"
        raise ThresholdsError(f"{source} {where}: not valid TOML: {found.group('message')}") from e
    return _Reader(text, source).read(data)


def default_thresholds() -> Thresholds:
    """The shipped defaults, ``sim/default_thresholds.toml``: generous enough for a busy laptop."""
    text = resources.files("sim").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    return parse_thresholds(text, f"(default) {DEFAULT_FILE}")


def load_thresholds(path: Path | None) -> Thresholds:
    """A team's file, or the defaults when ``path`` is None."""
    if path is None:
        return default_thresholds()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ThresholdsError(f"cannot read thresholds file {path}: {e}") from e
    return parse_thresholds(text, str(path))


# -- evaluation ---------------------------------------------------------------------------------


def _errors(outcomes: dict[str, int]) -> int:
    return sum(outcomes.get(o, 0) for o in ERROR_OUTCOMES)


def _run_value(metric: Metric, summary: dict[str, Any]) -> float:
    totals, outcomes = summary["totals"], summary["outcomes"]
    if metric == "min_rps":
        return float(totals["rps"])
    if metric == "error_ratio":
        return _errors(outcomes) / totals["requests"] if totals["requests"] else 0.0
    if metric == "telemetry_lost":
        return int((summary.get("telemetry") or {}).get("lost") or 0)
    if metric in LOAD_METRICS:
        # No load section (an older summary) or no offered rate (--interval 0): nothing short.
        load = summary.get("load") or {}
        if metric == "max_shortfall":
            return float(load.get("shortfall") or 0.0)
        return int(load.get("in_flight_at_stop") or 0)
    return int(outcomes.get(metric, 0))


def _row_value(metric: Metric, row: dict[str, Any], outcome: Outcome | None) -> float | None:
    """The metric on one row, or None when the row has nothing to measure it on."""
    count = row["count"]
    if metric in LATENCY_METRICS:
        latency = row["latency_by_outcome_us"].get(outcome, {}) if outcome else row["latency_us"]
        value = latency.get(metric.removesuffix("_us"))  # absent: no requests, or an old summary
        return None if value is None else float(value)
    if not count:
        return None
    if metric == "min_rps":
        share = row["outcomes"].get(outcome, 0) / count if outcome else 1.0
        return round(float(row["rps"]) * share, 2)
    if metric == "error_ratio":
        return _errors(row["outcomes"]) / int(count)
    return int(row["outcomes"].get(metric, 0))


def run_alg(summary: dict[str, Any]) -> str:
    """The run's access-token algorithm: the target's own word, else what its tokens said."""
    alg = (summary["run"].get("target") or {}).get("token_alg")
    if alg:
        return str(alg)
    algs = sorted({str(r["alg"]) for r in summary["requests"] if r["alg"] != "?"})
    return ",".join(algs) or "?"


def evaluate(thresholds: Thresholds, summary: dict[str, Any]) -> list[Check]:
    """Every threshold that applies to this run, measured. A threshold whose ``alg`` patterns match
    none of the run's rows does not apply (it is for another algorithm's run); one that applies but
    matches no row fails, so a typo or a scenario that sent nothing cannot pass unseen."""
    alg = run_alg(summary)
    rows: list[dict[str, Any]] = summary["requests"]
    checks = []
    for t in thresholds.thresholds:
        if t.selector is None:
            value = _run_value(t.metric, summary)
            checks.append(Check(t, alg, (Measured("run", value, t.passes(value)),)))
            continue
        selector = t.selector
        if selector.alg != ("*",) and not any(
            fnmatch.fnmatchcase(str(r["alg"]), p) for r in rows for p in selector.alg
        ):
            continue
        measured = []
        for row in rows:
            if not selector.matches(row):
                continue
            found = _row_value(t.metric, row, selector.outcome)
            if found is not None:
                where = f"{row['scenario']} {row['endpoint']}"
                measured.append(Measured(where, found, t.passes(found)))
        note = "" if measured else f"no requests matched {selector.describe()}"
        checks.append(Check(t, alg, tuple(measured), note))
    return checks
