"""``report.html``: one self-contained page per result, from Jinja2 templates with Plotly charts.

Every report kind (``run``, ``smoke``, ``compare``, ``capacity``, ``attack``) extends
``templates/base.html.j2``: the verdict and any failure first, then a header of what was run
where, then charts with a table for each. Plotly's JavaScript comes from the ``plotly`` package
and is written into the page, so a report opens from a file with no network; the figures are
built here as plain Plotly JSON.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Any

import jinja2

from sim import __version__
from sim.artefacts.attack_file import AttackFile
from sim.artefacts.capacity_file import CapacityFile
from sim.artefacts.compare_file import CompareFile
from sim.artefacts.smoke_file import SmokeFile
from sim.artefacts.summary_file import Summary, counts_of
from sim.output.charts import (
    attack_charts,
    capacity_charts,
    compare_charts,
    family_counts,
    run_charts,
    smoke_run_charts,
)

__all__ = [
    "human",
    "render",
    "run_context",
    "write_attack_report",
    "write_capacity_report",
    "write_compare_report",
    "write_report",
    "write_smoke_report",
]


def human(value: Any, digits: int | None = None) -> str:
    """A figure for people: ``12,345``, ``3.14``, ``yes``, ``-`` for nothing (never ``True``)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if digits is not None:
            return f"{value:,.{digits}f}"
        if value.is_integer():
            return f"{value:,.0f}"
        size = abs(value)
        return (
            f"{value:,.0f}" if size >= 1000 else f"{value:,.1f}" if size >= 10 else f"{value:,.2f}"
        )
    return str(value)


def when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{human(round(ratio * 100, 1))} %"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sim.output", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(human=human, when=when, percent=percent)
    env.globals.update(plotly_js=_plotly_js, fleetbench_version=__version__)
    return env


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def render(template: str, **context: Any) -> str:
    """Render one report template (``run.html.j2``...) with ``context``."""
    return _environment().get_template(template).render(**context)


def _seconds(summary: Summary) -> list[dict[str, Any]]:
    """The throughput chart's figures as table rows: per second, measured outcomes and setup."""
    timeline = summary["timeline"]
    start = min((row["t"] for row in timeline), default=0)
    setup = {row["t"]: counts_of(row) for row in summary.get("setup_timeline", [])}
    rows = []
    for row in timeline:
        first = setup.get(row["t"], {})
        rows.append(
            {
                "second": row["t"] - start,
                "measured": {k: v - first.get(k, 0) for k, v in counts_of(row).items()},
                "setup": sum(first.values()),
            }
        )
    return rows


def run_context(summary: Summary) -> dict[str, Any]:
    """What ``_run.html.j2`` needs for one run: the summary, its charts and per-second rows."""
    charts = run_charts(summary)
    return {"s": summary, "charts": charts, "seconds": _seconds(summary)}


def write_report(summary: Summary, path: Path) -> None:
    """The report of one ``fleetbench run``."""
    context = run_context(summary)
    path.write_text(render("run.html.j2", all_charts=context["charts"], **context))


def write_smoke_report(record: SmokeFile, path: Path) -> None:
    """The report of ``fleetbench smoke``: ``record`` is its top-level ``summary.json``."""
    charts = {alg: smoke_run_charts(alg, summary) for alg, summary in record["runs"].items()}
    flat = [chart for run in charts.values() for chart in run]
    path.write_text(render("smoke.html.j2", r=record, charts=charts, all_charts=flat))


def write_compare_report(
    result: CompareFile, path: Path, rows: list[tuple[str, ...]], capacity: list[str]
) -> None:
    """The report of ``fleetbench compare``: ``result`` is ``compare.json``, with its table rows."""
    charts = compare_charts(result)
    context = {"c": result, "rows": rows, "capacity": capacity}
    path.write_text(render("compare.html.j2", charts=charts, all_charts=charts, **context))


def write_capacity_report(
    result: CapacityFile, path: Path, rows: list[tuple[str, ...]], lines: list[str]
) -> None:
    """The report of ``fleetbench capacity``: ``result`` is ``capacity.json``, with its table."""
    charts = capacity_charts(result)
    context = {"c": result, "rows": rows, "lines": lines}
    path.write_text(render("capacity.html.j2", charts=charts, all_charts=charts, **context))


def write_attack_report(body: AttackFile, path: Path) -> None:
    """The report of ``fleetbench attack``: ``body`` is ``attack.json``."""
    charts = attack_charts(body)
    families = [family_counts(run) for run in body["runs"]]
    path.write_text(
        render("attack.html.j2", a=body, families=families, charts=charts, all_charts=charts)
    )
