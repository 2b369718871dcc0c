"""``fleetbench diff BASE.json NEW.json``: two runs side by side, exit 1 if NEW regressed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sim.cli.options import positive_int, tolerance
from sim.exits import ExitCode
from sim.output.diff import Change, compare_runs, load_rows

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser("diff", help="compare two summary.json files; exit 1 on a regression")
    p.set_defaults(handler=command)
    p.add_argument("base", type=Path, metavar="BASE.json", help="the baseline summary.json")
    p.add_argument("new", type=Path, metavar="NEW.json", help="the summary.json to judge")
    p.add_argument(
        "--tolerance",
        type=tolerance,
        default=0.10,
        help="allowed change before it is a regression (default 10%%)",
    )
    p.add_argument(
        "--min-count",
        type=positive_int,
        default=20,
        help="judge rps and latency only on rows with this many requests in both (default 20)",
    )


def command(args: argparse.Namespace, console: Console) -> int:
    """0 no regression beyond the tolerance, 1 a regression."""

    base, new = load_rows(args.base), load_rows(args.new)
    changes = compare_runs(base, new, args.tolerance, args.min_count)
    table = Table(
        title=f"{args.base} -> {args.new} (latency in µs; tolerance {args.tolerance * 100:g}%)",
        title_justify="left",
    )
    table.add_column("alg scenario endpoint")
    table.add_column("figure")
    for column in ("base", "new", "change"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    styles = {"regression": "red", "better": "green", "missing": "red", "new": "cyan"}
    previous = ""
    for change in changes:
        style = styles.get(change.verdict)
        verdict = "" if change.verdict in ("same", "shown") else change.verdict.upper()
        table.add_row(
            "" if change.row == previous else change.row,
            change.metric,
            _figure(change.metric, change.base),
            _figure(change.metric, change.new),
            _relative(change),
            f"[{style}]{verdict}[/{style}]" if style else verdict,
        )
        previous = change.row
    console.print(table)
    regressions = [c for c in changes if c.verdict in ("regression", "missing")]
    for change in regressions:
        console.print(
            f"[red]REGRESSION[/red] {change.row} {change.metric}: "
            f"{_figure(change.metric, change.base)} -> {_figure(change.metric, change.new)} "
            f"({_relative(change)})",
            highlight=False,
        )
    if regressions:
        console.print(
            f"[red]FAIL[/red] {len(regressions)} figures regressed beyond "
            f"{args.tolerance * 100:g}%",
            highlight=False,
        )
        return ExitCode.FAILED
    console.print(f"[green]PASS[/green] no regression beyond {args.tolerance * 100:g}%")
    return ExitCode.OK


def _figure(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if metric == "rps" else f"{value:.0f}"


def _relative(change: Change) -> str:
    relative = change.relative
    if relative is None:
        if change.base == 0 and change.new:
            return "from 0"
        return "-"
    return f"{relative * 100:+.1f}%"
