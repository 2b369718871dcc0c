"""``fleetbench smoke``: the CI profile, short mixed runs per algorithm judged by thresholds."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sim.cli.metrics_options import add_metrics_options
from sim.cli.options import (
    add_embedded_algs,
    add_profile_option,
    add_target_options,
    add_transport_options,
    duration,
    embedded_algs,
    logger,
    positive_int,
)
from sim.exits import verdict_exit
from sim.output.progress import ConsoleProgress
from sim.profiles import load_profile
from sim.smoke import DEFAULT_ALGS, SmokeConfig, SmokeResult, run_smoke
from sim.smoke.result import measured_text
from sim.thresholds import load_thresholds
from sim.untrusted import shown

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "smoke", help="CI profile: short mixed runs per algorithm, judged by thresholds"
    )
    p.set_defaults(handler=command)
    add_target_options(p)
    add_embedded_algs(p, DEFAULT_ALGS, ", one run each")
    p.add_argument("--thresholds", type=Path, help="thresholds TOML (default: the shipped ones)")
    p.add_argument("--devices", type=positive_int, default=200, help="fleet size (default 200)")
    p.add_argument("--duration", type=duration, default=8.0, help="run time per run (default 8 s)")
    p.add_argument("--results", type=Path, help="results folder (default results/smoke-<time>)")
    p.add_argument("--no-pin", action="store_true", help="do not pin target and Locust to cores")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_profile_option(p)
    add_transport_options(p)
    add_metrics_options(p)


def command(args: argparse.Namespace, console: Console) -> int:
    """0 every threshold met, 1 one breached, 130 interrupted."""
    algs = embedded_algs(args, DEFAULT_ALGS)
    # A bad profile or thresholds file fails before anything starts; a team's thresholds may name
    # the profile's own endpoints.
    profile = load_profile(args.profile, os.environ)
    thresholds = load_thresholds(args.thresholds, tuple(e.name for e in profile.endpoints))
    with ConsoleProgress(console) as progress:
        config = SmokeConfig(
            target=args.target,
            admin_key=args.admin_key,
            algs=algs,
            devices=args.devices,
            duration_s=args.duration,
            results=args.results,
            pin=not args.no_pin,
            log=logger(console, args.quiet),
            progress=None if args.quiet else progress,
            profile=args.profile,
            transport=args.transport,
            mqtt_port=args.mqtt_port,
        )
        result = run_smoke(config, thresholds)
    print_smoke(result, console)
    return verdict_exit(result.passed, result.interrupted)


def print_smoke(result: SmokeResult, console: Console) -> None:

    table = Table(title="smoke thresholds", title_justify="left")
    for column in ("alg", "threshold", "rule"):
        table.add_column(column)
    table.add_column("measured (worst)", justify="right")
    table.add_column("at")
    table.add_column("result")
    for check in result.all_checks:
        worst = check.worst
        cells = (
            check.alg,
            check.threshold.name,
            check.threshold.rule,
            measured_text(check),
            worst.where if worst else check.note,
        )
        # Plain text: the run's algorithm and rows' names may hold what rich reads as markup.
        table.add_row(
            *(Text(shown(cell)) for cell in cells),
            Text("PASS", "green") if check.passed else Text("FAIL", "red"),
        )
    console.print(table)
    for alg, summary in result.runs.items():
        totals, outcomes = summary["totals"], summary["outcomes"]
        console.print(
            shown(
                f"{alg}: {totals['requests']} requests from {totals['devices']} devices in "
                f"{summary['run']['elapsed_s']:.1f} s, {totals['rps']:.1f} req/s; "
                + ", ".join(f"{o} {n}" for o, n in outcomes.items() if n)
            ),
            highlight=False,
            markup=False,
        )
    for alg, checks in result.checks.items():
        for check in checks:
            for line in [] if check.passed else check.breaches():
                console.print(
                    Text.assemble(("BREACH", "red"), " ", shown(f"{alg} {line}")),
                    highlight=False,
                )
    checks = result.all_checks
    failed = sum(not c.passed for c in checks)
    if result.passed:
        console.print(
            f"[green]PASS[/green] {len(checks)} thresholds met in {len(result.runs)} runs, "
            f"{result.elapsed_s:.0f} s",
            highlight=False,
        )
    else:
        console.print(
            f"[red]FAIL[/red] {failed} of {len(checks)} thresholds breached", highlight=False
        )
    console.print(f"results: {result.folder}", highlight=False, markup=False, soft_wrap=True)
