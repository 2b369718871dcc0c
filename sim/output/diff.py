"""``fleetbench diff BASE.json NEW.json``: two runs side by side, and whether NEW regressed.

Either file may be a run's ``summary.json`` (``fleetbench.summary/1``) or a smoke's
(``fleetbench.smoke/1``, every run in it). Rows are matched by algorithm, scenario and endpoint;
per row: requests per second (lower is worse), p50 and p99 latency (higher is worse), and outcome
counts. An error outcome (refused_valid, accepted_invalid, server_error, transport_error) is judged
by its share of the row's requests, so runs of different lengths compare fairly; ``ok`` and
``rejected_as_expected`` counts are shown, not judged. A row NEW no longer has is a regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

from sim.artefacts.codec import ArtefactError, read_summary_or_smoke
from sim.artefacts.smoke_file import SMOKE_SCHEMA
from sim.artefacts.summary_file import OutcomeCounts, Percentiles, Summary
from sim.errors import DiffError
from sim.outcomes import OUTCOMES
from sim.thresholds import ERROR_OUTCOMES

__all__ = [
    "Change",
    "DiffError",
    "DiffRow",
    "compare_runs",
    "load_rows",
]

Verdict = Literal["regression", "better", "same", "new", "missing", "shown"]
RowKey = tuple[str, str, str]  # alg, scenario, endpoint
TOTAL = ("run", "total")  # scenario, endpoint of the per-run totals row


class DiffRow(TypedDict):
    """One row of one run: a request row of its summary, or the run's totals (no latency)."""

    count: int
    rps: float
    outcomes: OutcomeCounts
    latency_us: Percentiles | None


@dataclass(frozen=True)
class Change:
    """One figure of one row in both runs."""

    row: str  # "HS256 verification telemetry"
    metric: str  # rps, p50_us, p99_us, or an outcome name
    base: float | None
    new: float | None
    verdict: Verdict

    @property
    def relative(self) -> float | None:
        if self.base is None or self.new is None or self.base == 0:
            return None
        return (self.new - self.base) / self.base


def _occurred(outcomes: OutcomeCounts) -> OutcomeCounts:
    """The outcomes that occurred, as a request row lists them."""
    counts: OutcomeCounts = {}
    for outcome in OUTCOMES:
        if outcomes.get(outcome, 0):
            counts[outcome] = outcomes.get(outcome, 0)
    return counts


def load_rows(path: Path) -> dict[RowKey, DiffRow]:
    """Request rows by (alg, scenario, endpoint), plus a ``run total`` row per run."""
    try:
        data = read_summary_or_smoke(path)
    except ArtefactError as e:
        raise DiffError(str(e)) from e
    summaries: list[Summary] = (
        list(data["runs"].values()) if data["schema"] == SMOKE_SCHEMA else [data]
    )
    rows: dict[RowKey, DiffRow] = {}
    for summary in summaries:
        algs = set()
        for row in summary["requests"]:
            rows[(row["alg"], row["scenario"], row["endpoint"])] = {
                "count": row["count"],
                "rps": row["rps"],
                "outcomes": row["outcomes"],
                "latency_us": row["latency_us"],
            }
            algs.add(row["alg"])
        alg = summary["run"]["target"]["token_alg"] or ",".join(sorted(algs))
        totals, outcomes = summary["totals"], summary["outcomes"]
        rows[(alg, *TOTAL)] = {
            "count": totals["requests"],
            "rps": totals["rps"],
            "outcomes": _occurred(outcomes),
            "latency_us": None,
        }
    return rows


def _judge(base: float, new: float, tolerance: float, higher_is_worse: bool) -> Verdict:
    worse, better = (new > base, new < base) if higher_is_worse else (new < base, new > base)
    if worse and abs(new - base) > tolerance * abs(base):
        return "regression"
    if better and abs(new - base) > tolerance * abs(base):
        return "better"
    return "same"


def _p50(row: DiffRow) -> float | None:
    latency = row["latency_us"]
    return None if latency is None else latency.get("p50")


def _p99(row: DiffRow) -> float | None:
    latency = row["latency_us"]
    return None if latency is None else latency.get("p99")


def _row_changes(
    name: str, base: DiffRow, new: DiffRow, tolerance: float, min_count: int
) -> list[Change]:
    changes = []
    judged = base["count"] >= min_count and new["count"] >= min_count
    figures: list[tuple[str, float | None, float | None, bool]] = [
        ("rps", base["rps"], new["rps"], False),
        ("p50_us", _p50(base), _p50(new), True),
        ("p99_us", _p99(base), _p99(new), True),
    ]
    for metric, was, now, higher_is_worse in figures:
        if was is None and now is None:
            continue
        verdict: Verdict = "shown"
        if judged and was is not None and now is not None:
            verdict = _judge(was, now, tolerance, higher_is_worse)
        changes.append(Change(name, metric, was, now, verdict))
    for outcome in OUTCOMES:
        was_n, now_n = base["outcomes"].get(outcome, 0), new["outcomes"].get(outcome, 0)
        if not was_n and not now_n:
            continue
        verdict = "shown"
        if outcome in ERROR_OUTCOMES:
            was_share = was_n / base["count"] if base["count"] else 0.0
            now_share = now_n / new["count"] if new["count"] else 0.0
            verdict = "regression" if now_n and was_share == 0 else "same"
            if was_share:
                verdict = _judge(was_share, now_share, tolerance, higher_is_worse=True)
        changes.append(Change(name, outcome, was_n, now_n, verdict))
    return changes


def compare_runs(
    base: dict[RowKey, DiffRow],
    new: dict[RowKey, DiffRow],
    tolerance: float,
    min_count: int = 20,
) -> list[Change]:
    """Every figure of every row; latency and rps are judged only on rows with ``min_count``
    requests in both runs (a p99 of five requests is noise)."""
    changes: list[Change] = []
    for key in sorted(base.keys() | new.keys(), key=lambda k: (k[0], k[1:] == TOTAL, k)):
        name = " ".join(key)
        if key not in new:
            gone: Verdict = "missing" if base[key]["count"] >= min_count else "shown"
            changes.append(Change(name, "requests", base[key]["count"], None, gone))
        elif key not in base:
            changes.append(Change(name, "requests", None, new[key]["count"], "new"))
        else:
            changes += _row_changes(name, base[key], new[key], tolerance, min_count)
    return changes
