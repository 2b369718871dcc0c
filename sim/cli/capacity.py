"""``fleetbench capacity``: the highest open-model rate each algorithm holds at an objective."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sim.cli.metrics_options import add_metrics_options
from sim.cli.options import (
    ADMIN_KEY_ENV,
    add_master_options,
    add_sweep_transport_options,
    cpus,
    duration,
    logger,
    mqtt_session_of,
    positive_float,
    positive_int,
)
from sim.device.seal import KEY_ENV
from sim.exits import ExitCode
from sim.run.distributed import master_key
from sim.run.results import results_folder
from sim.sweep.capacity import (
    CapacityConfig,
    capacity_lines,
    default_algs,
    found_for_all,
    parse_error_budget,
    parse_slo,
    run_capacity,
    table_headers,
    table_rows,
    write_capacity_outputs,
)
from sim.sweep.compare import parse_algs, targets_of

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "capacity", help="the highest request rate each algorithm holds at a latency objective"
    )
    p.set_defaults(handler=command)
    p.add_argument(
        "--algs",
        help="comma-separated (default HS256,ES256; with --target, the algorithm its tokens carry)",
    )
    p.add_argument(
        "--slo",
        default="p99=50ms",
        help="the objective on corrected latency: p50|p90|p95|p99|p99.9=LIMIT (default p99=50ms)",
    )
    p.add_argument(
        "--error-budget",
        default="0.1%",
        help="share of requests allowed not to be ok (default 0.1%%)",
    )
    p.add_argument("--devices", type=positive_int, default=50, help="fleet size of each step")
    p.add_argument(
        "--step-duration", type=duration, default=10.0, help="run time of each step (default 10s)"
    )
    p.add_argument(
        "--warmup",
        type=duration,
        default=2.0,
        help="unjudged run time before each step's measured time: the fleet's first tokens"
        " (default 2s)",
    )
    p.add_argument(
        "--start-rate", type=positive_float, default=100.0, help="first rate, req/s (default 100)"
    )
    p.add_argument("--max-steps", type=positive_int, default=10, help="at most this many doublings")
    p.add_argument(
        "--narrow-steps",
        type=int,
        default=4,
        help="at most this many bisection steps after the objective broke (default 4)",
    )
    p.add_argument(
        "--interval-s",
        type=positive_float,
        default=60.0,
        help="the real fleet's reporting interval, s: devices = max rate x this (default 60)",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="Locust worker processes")
    add_master_options(p)
    p.add_argument(
        "--endpoint",
        help="one of the profile's [[endpoints]] by name (default: data on the embedded target)",
    )
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="[ALG=]URL",
        help="the service signing with ALG (repeat per algorithm; a bare URL: every algorithm);"
        " default: a fresh embedded target per algorithm and step",
    )
    p.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="[ALG=]NAME|FILE",
        help="how to talk to ALG's --target (repeat per algorithm; bare: every algorithm)",
    )
    p.add_argument(
        "--admin-key",
        default=os.environ.get(ADMIN_KEY_ENV),
        help=f"the targets' admin key, for profiles that register by it (prefer {ADMIN_KEY_ENV})",
    )
    p.add_argument("--results", type=Path, help="results folder (default results/capacity-<time>)")
    p.add_argument(
        "--no-second-opinion",
        action="store_true",
        help="embedded target: skip the check at the knee by a client without Locust",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin target and Locust to cores")
    p.add_argument(
        "--generator-cpus",
        type=cpus,
        metavar="LIST",
        help="cores the load generator runs on (e.g. 1 or 2-3), away from a --target on this host",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print capacity.json to stdout")
    add_sweep_transport_options(p)
    add_metrics_options(p)


def command(args: argparse.Namespace, console: Console) -> int:
    """0 a rate met the objective for every algorithm, 1 the start rate broke it for one."""
    session = mqtt_session_of(args.transport, args.mqtt_session, "per-reading", args.mqtt_port)
    log = logger(console, quiet=args.quiet or args.json)
    if args.algs is None:
        algs = default_algs(args.target, args.profile, args.admin_key, os.environ)
        if args.target:
            log(f"--algs {','.join(algs)}: the algorithm of the API's tokens")
    else:
        algs = parse_algs(args.algs)
    objective = parse_slo(args.slo)
    budget = parse_error_budget(args.error_budget)
    targets = targets_of(algs, args.target, args.profile, args.mqtt_port)
    config = CapacityConfig(
        algs=algs,
        objective=objective,
        error_budget=budget,
        devices=args.devices,
        step_duration_s=args.step_duration,
        warmup_s=args.warmup,
        start_rate_rps=args.start_rate,
        raise_steps=args.max_steps,
        narrow_steps=args.narrow_steps,
        interval_s=args.interval_s,
        endpoint=args.endpoint,
        workers=args.workers,
        master=args.master,
        bind=args.bind,
        expect_workers=args.expect_workers or 0,
        worker_wait_s=args.worker_wait,
        pin=not args.no_pin,
        generator_cpus=args.generator_cpus,
        results=args.results or Path("results"),
        log=log,
        targets=targets,
        admin_key=args.admin_key,
        second_opinion=not args.no_second_opinion,
        transport=args.transport,
        mqtt_session=session,
    )
    config.check()  # a bad step count, --bind or --expect-workers: one line, before any folder
    folder = results_folder(args.results, "capacity")
    config = dataclasses.replace(config, results=folder)
    if args.master:
        # One key for every step's master: the workers join each step with the same one.
        os.environ[KEY_ENV] = master_key(
            os.environ, lambda line: print(line, file=sys.stderr, flush=True)
        )
    result = run_capacity(config)
    paths = write_capacity_outputs(result, folder)
    if args.json:
        print(json.dumps(result, indent=2))
        for line in capacity_lines(result):
            if line.startswith("warning:"):
                print(f"fleetbench: {line}", file=sys.stderr)
    else:
        table = Table(title=f"capacity at {objective.text} (corrected latency)")
        for index, header in enumerate(table_headers(result)):
            table.add_column(header, justify="left" if index == 0 else "right")
        for row in table_rows(result):
            table.add_row(*row)
        console.print(table)
        for line in capacity_lines(result):
            style = "bold red" if line.startswith("warning:") else None
            console.print(line, style=style, highlight=False)
        console.print(f"results: {paths['html']} (data {paths['json'].name})")
    return ExitCode.OK if found_for_all(result) else ExitCode.FAILED
