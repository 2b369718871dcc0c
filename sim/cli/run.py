"""``fleetbench run``: provision a fleet and run it against a target."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from sim.account.storms import parse_run_scenario
from sim.cli.metrics_options import add_metrics_options
from sim.cli.options import (
    add_master_options,
    add_mqtt_session_option,
    add_profile_option,
    add_target_options,
    add_transport_options,
    cpus,
    duration,
    logger,
    mqtt_session_of,
    positive_float,
    positive_int,
    ratio,
    seconds,
)
from sim.errors import ConfigError
from sim.exits import verdict_exit
from sim.fleet.model import CREDENTIAL_KINDS
from sim.shape.scenarios import REFRESH_MODES
from sim.shape.stages import parse_stages
from target.jose.vocabulary import ALG_NAMES as TOKEN_ALGS

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    run = commands.add_parser("run", help="provision a fleet and run it against a target")
    run.set_defaults(handler=command)
    add_target_options(run)
    run.add_argument("--fleet", type=Path, help="reuse this fleet file (fleetbench provision)")
    run.add_argument("--devices", type=positive_int, help="fleet size (default 100)")
    run.add_argument("--alg", choices=CREDENTIAL_KINDS, default="ES256", help="device credential")
    run.add_argument(
        "--token-alg", choices=TOKEN_ALGS, default="ES256", help="embedded target's signing alg"
    )
    run.add_argument("--token-ttl", type=positive_int, help="embedded target's token lifetime, s")
    run.add_argument(
        "--leeway",
        type=int,
        help="target's clock leeway, s: sets ours; with --target, what the judge allows past exp",
    )
    run.add_argument(
        "--scenario",
        default="verification",
        help="issuance, verification, expiry, rejection, mixed, or weights (issuance=1,expiry=4);"
        " or a storm: expiry-storm, reconnect-storm, rotation-storm, revocation",
    )
    run.add_argument(
        "--target-workers",
        type=positive_int,
        default=1,
        help="the embedded target's worker processes (its --workers; default 1)",
    )
    run.add_argument(
        "--outage-cmd",
        metavar="CMD",
        help="reconnect-storm on a --target: a command that restarts your API, run 35 %% in",
    )
    run.add_argument(
        "--rotate-cmd",
        metavar="CMD",
        help="rotation-storm on a --target: a command that rotates its signing key, run 30 %% in"
        " (default: the profile's [rotate] call)",
    )
    run.add_argument(
        "--revoke-percent",
        type=positive_float,
        default=10.0,
        help="revocation: the share of devices revoked, %% (default 10)",
    )
    run.add_argument(
        "--revocation-bound",
        type=seconds,
        metavar="S",
        help="revocation: seconds after a revoke call's answer by which every process must refuse"
        " the device (default: the profile's [revoke] bound_s; ours 0)",
    )
    run.add_argument(
        "--backoff",
        action="store_true",
        help="jittered exponential backoff (0.2 s doubling to 5 s) on refused token calls too,"
        " and on 429/503 answers in a storm",
    )
    run.add_argument(
        "--endpoint",
        help="one of the profile's [[endpoints]] by name (ours: telemetry, the default, config,"
        " data); default: the profile's default_endpoint, else all of them by weight",
    )
    pacing = run.add_mutually_exclusive_group()  # both given: one line, exit 2
    pacing.add_argument(
        "--interval",
        type=seconds,
        help="closed model: seconds between a device's requests (default 1)",
    )
    pacing.add_argument(
        "--rate",
        type=positive_float,
        metavar="R",
        help="open model: fleet-wide requests/s, each device R/devices on its own schedule",
    )
    run.add_argument("--refresh", choices=REFRESH_MODES, default="on-expiry")
    run.add_argument("--bad-ratio", type=ratio, default=0.5, help="forged share in rejection")
    run.add_argument(
        "--duration", type=duration, help="run time (30, 30s, 2m, 1h30m; default 10 s)"
    )
    run.add_argument(
        "--stages",
        metavar="STEPS",
        help='load steps, ramping: "30s:100,60s:1000,30s:0" devices, or "30s:500r,..." req/s',
    )
    run.add_argument("--spawn-rate", type=float, help="devices started per second")
    run.add_argument("--workers", type=positive_int, default=1, help="Locust worker processes")
    add_master_options(run)
    run.add_argument("--results", type=Path, help="results folder (default results/run-<time>)")
    run.add_argument("--no-pin", action="store_true", help="do not pin target and Locust to cores")
    run.add_argument(
        "--generator-cpus",
        type=cpus,
        help="cores for the load generator (1,3 or 2-3): with a --target on this machine, keep"
        " it off the target's cores",
    )
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    add_profile_option(run)
    add_transport_options(run)
    add_mqtt_session_option(run, "held")
    add_metrics_options(run)


def command(args: argparse.Namespace, console: Console) -> int:
    """0 the run passed its verdict, 1 it failed it, 130 interrupted."""
    from sim.output.progress import ConsoleProgress
    from sim.output.table import print_summary
    from sim.run.config import RunConfig
    from sim.run.runner import run_benchmark

    scenarios, storm = parse_run_scenario(args.scenario)
    duration_s = 10.0 if args.duration is None else args.duration
    devices = 100 if args.devices is None else args.devices
    stages = None
    if args.stages is not None:
        stages = parse_stages(args.stages)
        if args.duration is not None:
            raise ConfigError("--stages sets the run time: drop --duration")
        if stages.kind == "rate" and args.interval is not None:
            raise ConfigError("rate stages (30s:500r) are the open model: drop --interval")
        if stages.kind == "devices" and args.devices is not None:
            raise ConfigError("device stages (30s:100) set the fleet size: drop --devices")
        duration_s = stages.total_s
        devices = round(stages.peak) if stages.kind == "devices" else devices
    with ConsoleProgress(console) as progress:
        config = RunConfig(
            target=args.target,
            admin_key=args.admin_key,
            fleet=args.fleet,
            devices=devices,
            alg=args.alg,
            token_alg=args.token_alg,
            token_ttl=args.token_ttl,
            leeway=args.leeway,
            scenarios=scenarios,
            endpoint=args.endpoint,
            interval_s=1.0 if args.interval is None else args.interval,
            rate_rps=args.rate,
            stages=stages,
            refresh=args.refresh,
            bad_ratio=args.bad_ratio,
            duration_s=duration_s,
            spawn_rate=args.spawn_rate,
            workers=args.workers,
            results=args.results,
            pin=not args.no_pin,
            log=logger(console, args.quiet),
            progress=None if args.quiet else progress,
            profile=args.profile,
            master=args.master,
            bind=args.bind,
            expect_workers=args.expect_workers or 0,
            worker_wait_s=args.worker_wait,
            storm=storm,
            backoff=args.backoff,
            generator_cpus=args.generator_cpus,
            target_workers=args.target_workers,
            outage_cmd=args.outage_cmd,
            rotate_cmd=args.rotate_cmd,
            revoke_percent=args.revoke_percent,
            revocation_bound_s=args.revocation_bound,
            transport=args.transport,
            mqtt_port=args.mqtt_port,
            mqtt_session=mqtt_session_of(args.transport, args.mqtt_session, "held"),
        )
        summary = run_benchmark(config)
    print_summary(summary, console)
    return verdict_exit(summary["verdict"]["passed"], summary["run"]["interrupted"])
