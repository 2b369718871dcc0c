"""``fleetbench compare``: signing algorithms side by side: cost, size, throughput."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sim.artefacts.compare_file import CompareFile
from sim.cli.metrics_options import add_metrics_options
from sim.cli.options import (
    ADMIN_KEY_ENV,
    add_sweep_transport_options,
    duration,
    logger,
    mqtt_session_of,
    positive_int,
    seconds,
)
from sim.errors import CompareError
from sim.exits import ExitCode
from sim.run.results import results_folder
from sim.sweep.compare import (
    CompareConfig,
    EndToEndLoad,
    account_lines,
    capacity_lines,
    parse_algs,
    run_compare,
    table_rows,
    targets_of,
    write_compare_outputs,
)

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "compare", help="signing algorithms side by side: cost, size, throughput"
    )
    p.set_defaults(handler=command)
    p.add_argument(
        "--algs", default="HS256,ES256", help="comma-separated; the first is the baseline"
    )
    p.add_argument("--repeat", type=positive_int, default=3, help="interleaved rounds (default 3)")
    p.add_argument(
        "--micro-only", action="store_true", help="in-process figures only, no HTTP or MQTT"
    )
    p.add_argument(
        "--micro-budget", type=seconds, default=0.25, help="seconds per micro figure / 5"
    )
    p.add_argument("--devices", type=positive_int, default=50, help="end-to-end fleet size")
    p.add_argument("--duration", type=duration, default=8.0, help="end-to-end run time per round")
    p.add_argument("--interval", type=seconds, default=0.0, help="end-to-end pacing per device, s")
    p.add_argument(
        "--endpoint",
        help="one of the profile's [[endpoints]] by name (default: data on the embedded target,"
        " the profile's default_endpoint, else all, on a --target)",
    )
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="[ALG=]URL",
        help="the service signing with ALG, for its end-to-end rounds (repeat per algorithm; a"
        " bare URL: every algorithm); default: a fresh embedded target per algorithm",
    )
    p.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="[ALG=]NAME|FILE",
        help="how to talk to ALG's --target (repeat per algorithm; bare: every algorithm;"
        " default fleetbench)",
    )
    p.add_argument(
        "--admin-key",
        default=os.environ.get(ADMIN_KEY_ENV),
        help=f"the targets' admin key, for profiles that register by it (prefer {ADMIN_KEY_ENV})",
    )
    p.add_argument("--results", type=Path, help="results folder (default results/compare-<time>)")
    p.add_argument("--no-pin", action="store_true", help="do not pin target and Locust to cores")
    p.add_argument("--json", action="store_true", help="print compare.json to stdout")
    add_sweep_transport_options(p)
    add_metrics_options(p)


def command(args: argparse.Namespace, console: Console) -> int:
    session = mqtt_session_of(args.transport, args.mqtt_session, "per-reading", args.mqtt_port)
    if args.micro_only and args.transport == "mqtt":
        raise CompareError("--transport mqtt is for the end-to-end rounds: drop --micro-only")
    algs = parse_algs(args.algs)
    targets = targets_of(algs, args.target, args.profile, args.mqtt_port)
    folder = results_folder(args.results, "compare")
    log = logger(console, quiet=args.json)
    load = None
    if not args.micro_only:
        load = EndToEndLoad(
            devices=args.devices,
            duration_s=args.duration,
            interval_s=args.interval,
            endpoint=args.endpoint,
            pin=not args.no_pin,
            transport=args.transport,
            mqtt_session=session,
        )
    config = CompareConfig(
        algs, args.repeat, args.micro_budget, load, folder, log, targets, args.admin_key
    )
    result = run_compare(config)
    paths = write_compare_outputs(result, folder)
    if args.json:
        print(json.dumps(result, indent=2))
        return ExitCode.OK
    _print_compare(result, algs, args.repeat, console)
    console.print(f"results: {paths['html']} (data {paths['json'].name})")
    return ExitCode.OK


def _print_compare(result: CompareFile, algs: list[str], repeat: int, console: Console) -> None:
    table = Table(title=f"median of {repeat} interleaved rounds (min-max); ratio to {algs[0]}")
    table.add_column("figure")
    for alg in algs:
        table.add_column(alg, justify="right")
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    for line in capacity_lines(result) + account_lines(result):
        console.print(line, highlight=False)
    targets = result.get("targets", {})
    if any(not t["embedded"] for t in targets.values()):
        console.print(
            "(local): figures measured in this process with our own verifier, not the targets';"
            " end to end: "
            + "; ".join(f"{a} {t['url']} ({t['profile']})" for a, t in targets.items()),
            highlight=False,
        )
    for alg, entry in result["algorithms"].items():
        if entry.get("generator_saturated"):
            console.print(
                f"[bold red]{alg}: the load generator was saturated (see its saturation_rule): its"
                " end-to-end figures are a floor on the target's capacity, not a measure of it[/]"
            )
