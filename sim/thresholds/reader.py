"""Reading a thresholds TOML file into :class:`~sim.thresholds.model.Thresholds`; every
complaint names the file and the line (:mod:`sim.tomlfile`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from sim.errors import ThresholdsError
from sim.outcomes import OUTCOMES
from sim.shape.scenarios import ENDPOINTS, SCENARIOS
from sim.thresholds.model import (
    ALWAYS_ON,
    COUNT_METRICS,
    LATENCY_KINDS,
    LATENCY_METRICS,
    LOAD_METRICS,
    METRIC_NAMES,
    METRICS,
    PROTECTED,
    TOKEN_ROWS,
    Selector,
    Threshold,
    Thresholds,
    is_glob,
)
from sim.tomlfile import TomlFile, parse_toml, read_toml
from target.jose.algorithms import ALG_NAMES

SELECTORS = ("name", "endpoint", "scenario", "alg", "outcome", "latency")
KNOWN_SCENARIOS = (*SCENARIOS, "setup")
KNOWN_ENDPOINTS = (PROTECTED, *ENDPOINTS, *TOKEN_ROWS)
DEFAULT_FILE = "default_thresholds.toml"


class _Reader:
    """Turns one parsed file into thresholds; every complaint names the file and the line."""

    def __init__(self, document: TomlFile, endpoints: tuple[str, ...] = ()) -> None:
        self.document = document
        self.source = document.source
        # The target profile's own endpoint names are known names too.
        self.endpoints = (*KNOWN_ENDPOINTS, *(e for e in endpoints if e not in KNOWN_ENDPOINTS))

    def fail(self, message: str, table: str | None, index: int, key: str) -> ThresholdsError:
        return ThresholdsError(f"{self.document.where(table, index, key)}: {message}")

    def read(self) -> Thresholds:
        data = self.document.data
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
            line = self.document.line_of("run", 0, key)
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
            if known is not None and not is_glob(pattern) and pattern not in known:
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
        latency = table.get("latency", "service")
        if latency not in LATENCY_KINDS:
            raise self.fail(
                f"latency must be one of {', '.join(LATENCY_KINDS)}, not {latency!r}",
                "threshold",
                index,
                "latency",
            )
        if latency == "corrected" and outcome is not None:
            raise self.fail(
                "latency = corrected reads a row's requests of every outcome; drop outcome",
                "threshold",
                index,
                "latency",
            )
        selector = Selector(
            endpoint=self._patterns("endpoint", table.get("endpoint", "*"), index, self.endpoints),
            scenario=self._patterns("scenario", table.get("scenario", "*"), index, KNOWN_SCENARIOS),
            alg=self._patterns("alg", table.get("alg", "*"), index, ALG_NAMES),
            outcome=outcome,
            latency=latency,
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
            line = self.document.line_of("threshold", index, key)
            found.append(Threshold(name, metric, limit, selector, line))
        if not found:
            raise self.fail(
                f"[[threshold]] #{index + 1} ({name}) names no metric", "threshold", index, "name"
            )
        return found


def parse_thresholds(text: str, source: str = "thresholds") -> Thresholds:
    """Parse and check a thresholds file; a mistake is a one-line :class:`ThresholdsError`."""
    return _Reader(parse_toml(text, source, ThresholdsError)).read()


def default_thresholds() -> Thresholds:
    """The shipped defaults, ``sim/thresholds/default_thresholds.toml``: generous enough for a
    busy laptop."""
    text = resources.files("sim.thresholds").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    return parse_thresholds(text, f"(default) {DEFAULT_FILE}")


def load_thresholds(path: Path | None, endpoints: tuple[str, ...] = ()) -> Thresholds:
    """A team's file, or the defaults when ``path`` is None. ``endpoints``: the target profile's
    endpoint names, which a team's file may select besides ours."""
    if path is None:
        return default_thresholds()
    return _Reader(read_toml(path, ThresholdsError, "thresholds"), endpoints).read()
