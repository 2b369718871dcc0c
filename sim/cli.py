"""The ``fleetbench`` command: ``run`` and ``provision``; more commands to come."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sim import __version__
from sim.attack import add_attack_parser, attack_command
from sim.compare import add_compare_parser, compare_command
from sim.diff import add_diff_parser, diff_command
from sim.errors import ConfigError, SimError
from sim.fleet import CREDENTIAL_KINDS, load_fleet, make_fleet, save_fleet
from sim.http import TargetClient
from sim.probe_command import add_probe_parser, probe_command
from sim.provision import register_fleet
from sim.scenarios import ENDPOINTS, REFRESH_MODES, parse_scenarios
from sim.smoke import add_smoke_parser, smoke_command
from target.jose import ALG_NAMES as TOKEN_ALGS

__all__ = ["main"]

EXIT_FAILED = 1  # the run finished and its verdict is FAIL
EXIT_ERROR = 2  # bad input, unreachable target, refused key, mismatched fleet
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one readable line, not a usage dump
        self.exit(EXIT_ERROR, f"fleetbench: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    """``30``, ``30s``, ``2m`` or ``1h`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = float(number) * scale
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 30, 30s or 2m)") from e
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


@cache
def _locust_timespan() -> Callable[[str], int]:
    """Locust's own ``--run-time`` parser (``30``, ``30s``, ``2m``, ``1h30m``), loaded alone:
    importing the ``locust`` package monkey-patches the standard library with gevent, which the
    orchestrator (threads, subprocesses, signals) must not be."""
    spec = importlib.util.find_spec("locust")
    if spec is None or spec.origin is None:
        raise ConfigError("Locust is not installed")
    path = Path(spec.origin).parent / "util" / "timespan.py"
    module_spec = importlib.util.spec_from_file_location("_fleetbench_locust_timespan", path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load Locust's timespan parser from {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    parse: Callable[[str], int] = module.parse_timespan
    return parse


def _duration(text: str) -> float:
    """A run time as Locust takes it: whole seconds, ``30``, ``30s``, ``2m``, ``1h30m``."""
    try:
        value = _locust_timespan()(text.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (whole seconds: 30, 30s, 2m, 1h30m)"
        ) from e
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    return float(value)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from e
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _add_target_options(
    p: argparse.ArgumentParser, target_help: str = "a running target (default: start our own)"
) -> None:
    p.add_argument("--target", metavar="URL", help=target_help)
    p.add_argument(
        "--admin-key",
        default=os.environ.get("FLEETBENCH_ADMIN_KEY"),
        help="the target's admin key (prefer FLEETBENCH_ADMIN_KEY: flags show in ps)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fleetbench", description="Load-test JWT authentication for IoT fleets.")
    parser.add_argument("--version", action="version", version=f"fleetbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="provision a fleet and run it against a target")
    _add_target_options(run)
    run.add_argument("--fleet", type=Path, help="reuse this fleet file (fleetbench provision)")
    run.add_argument("--devices", type=_positive_int, default=100, help="fleet size (default 100)")
    run.add_argument("--alg", choices=CREDENTIAL_KINDS, default="ES256", help="device credential")
    run.add_argument(
        "--token-alg", choices=TOKEN_ALGS, default="ES256", help="embedded target's signing alg"
    )
    run.add_argument("--token-ttl", type=_positive_int, help="embedded target's token lifetime, s")
    run.add_argument(
        "--leeway",
        type=int,
        help="target's clock leeway, s: sets ours; with --target, what the judge allows past exp",
    )
    run.add_argument(
        "--scenario",
        default="verification",
        help="issuance, verification, expiry, rejection, mixed, or weights (issuance=1,expiry=4)",
    )
    run.add_argument("--endpoint", choices=ENDPOINTS, default="telemetry")
    run.add_argument(
        "--interval", type=_seconds, default=1.0, help="seconds between a device's requests"
    )
    run.add_argument("--refresh", choices=REFRESH_MODES, default="on-expiry")
    run.add_argument("--bad-ratio", type=_ratio, default=0.5, help="forged share in rejection")
    run.add_argument(
        "--duration", type=_duration, default=10.0, help="run time (30, 30s, 2m, 1h30m)"
    )
    run.add_argument("--spawn-rate", type=float, help="devices started per second")
    run.add_argument("--workers", type=_positive_int, default=1, help="Locust worker processes")
    run.add_argument("--results", type=Path, help="results folder (default results/run-<time>)")
    run.add_argument("--no-pin", action="store_true", help="do not pin target and Locust to cores")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument(
        "--profile",
        default="fleetbench",
        metavar="NAME|FILE",
        help="how to talk to the target: a shipped profile or a .toml file (default fleetbench)",
    )

    provision = commands.add_parser("provision", help="make a fleet file and register it")
    _add_target_options(
        provision, "register the fleet with this running target (default: only write the file)"
    )
    provision.add_argument("--devices", type=_positive_int, default=100)
    provision.add_argument("--alg", choices=CREDENTIAL_KINDS, default="ES256")
    provision.add_argument(
        "--out", type=Path, default=Path("fleet.json"), help="fleet file to write"
    )
    provision.add_argument("--fleet", type=Path, help="register this existing fleet file instead")
    provision.add_argument("--chunk", type=_positive_int, default=1000, help="devices per request")
    provision.add_argument(
        "--profile", default="fleetbench", metavar="NAME|FILE", help="target profile (sim/profiles)"
    )
    add_compare_parser(commands, _positive_int, _seconds, _duration)
    add_smoke_parser(commands, _positive_int, _duration)
    add_attack_parser(commands)
    add_diff_parser(commands, _positive_int)
    add_probe_parser(commands)
    return parser


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _provision(args: argparse.Namespace, console: Console) -> int:
    from sim.profiles import load_profile
    from sim.profiles.provision import profile_fleet, register_by_call

    profile = load_profile(args.profile, os.environ)
    via = profile.provision.via
    started = time.monotonic()
    with _progress(console) as progress:
        if args.fleet is not None:
            fleet = load_fleet(args.fleet)
            path = args.fleet
        else:
            task = progress.add_task(f"keys ({args.alg})", total=args.devices)
            advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
            if profile.name == "fleetbench":
                fleet = make_fleet(args.devices, args.alg, progress=advance)
            else:
                fleet = profile_fleet(profile, args.devices, progress=advance)
            path = args.out
            save_fleet(fleet, path)
        if args.target is not None and via in ("admin", "call"):
            client = TargetClient(args.target, args.admin_key)
            client.check_alive()
            task = progress.add_task("register", total=len(fleet))
            if via == "call":
                result = register_by_call(client, profile, fleet)
            else:
                result = register_fleet(
                    client, fleet, chunk=args.chunk, progress=lambda n: progress.advance(task, n)
                )
    elapsed = time.monotonic() - started
    if args.target is not None and via not in ("admin", "call"):
        console.print(
            f"{len(fleet)} {fleet.kind} devices written to {path} (mode 0600); profile "
            f"{profile.name} registers none (provision via {via})",
            highlight=False,
            soft_wrap=True,
        )
    elif args.target is None:
        console.print(
            f"{len(fleet)} {fleet.kind} devices written to {path} (mode 0600), not registered"
        )
    else:
        console.print(
            f"{len(fleet)} {fleet.kind} devices in {path} (mode 0600): {result.created} "
            f"registered, {result.already_registered} already known, in {elapsed:.2f} s",
            highlight=False,
            soft_wrap=True,  # a long path must not fold the line
        )
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    from sim.progress import ConsoleProgress
    from sim.runner import RunConfig, run_benchmark
    from sim.table import print_summary

    def log(message: str) -> None:
        if not args.quiet:
            console.print(f"[dim]fleetbench: {message}[/dim]", highlight=False)

    config = RunConfig(
        target=args.target,
        admin_key=args.admin_key,
        fleet=args.fleet,
        devices=args.devices,
        alg=args.alg,
        token_alg=args.token_alg,
        token_ttl=args.token_ttl,
        leeway=args.leeway,
        scenarios=parse_scenarios(args.scenario),
        endpoint=args.endpoint,
        interval_s=args.interval,
        refresh=args.refresh,
        bad_ratio=args.bad_ratio,
        duration_s=args.duration,
        spawn_rate=args.spawn_rate,
        workers=args.workers,
        results=args.results,
        pin=not args.no_pin,
        log=log,
        profile=args.profile,
    )
    with ConsoleProgress(console) as progress:
        config.progress = None if args.quiet else progress
        summary = run_benchmark(config)
    print_summary(summary, console)
    if summary["run"]["interrupted"]:
        return EXIT_INTERRUPTED
    return 0 if summary["verdict"]["passed"] else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Not a terminal (CI logs, pipes): wide enough that the table does not fold.
    console = Console(width=None if sys.stdout.isatty() else 140)
    commands = {"run": _run, "provision": _provision, "compare": compare_command}
    commands |= {"smoke": smoke_command, "diff": diff_command, "attack": attack_command}
    commands["probe"] = probe_command
    try:
        return commands[args.command](args, console)
    except SimError as e:
        print(f"fleetbench: error: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED if type(e).__name__ == "Interrupted" else EXIT_ERROR
    except KeyboardInterrupt:
        print("fleetbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
