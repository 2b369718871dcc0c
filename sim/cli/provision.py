"""``fleetbench provision``: make a fleet file and register it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from sim.cli.options import add_profile_option, add_target_options, positive_int
from sim.exits import ExitCode
from sim.fleet.admin import DEFAULT_CHUNK
from sim.fleet.model import CREDENTIAL_KINDS
from sim.output.progress import ConsoleProgress
from sim.provision import ProvisionConfig, provision

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser("provision", help="make a fleet file and register it")
    p.set_defaults(handler=command)
    add_target_options(
        p, "register the fleet with this running target (default: only write the file)"
    )
    p.add_argument("--devices", type=positive_int, default=100)
    p.add_argument("--alg", choices=CREDENTIAL_KINDS, default="ES256")
    p.add_argument("--out", type=Path, default=Path("fleet.json"), help="fleet file to write")
    p.add_argument("--fleet", type=Path, help="register this existing fleet file instead")
    p.add_argument("--chunk", type=positive_int, default=DEFAULT_CHUNK, help="devices per request")
    add_profile_option(p)


def command(args: argparse.Namespace, console: Console) -> int:
    with ConsoleProgress(console) as progress:
        done = provision(
            ProvisionConfig(
                target=args.target,
                admin_key=args.admin_key,
                devices=args.devices,
                alg=args.alg,
                out=args.out,
                fleet=args.fleet,
                chunk=args.chunk,
                bar=progress.bar,
                profile=args.profile,
            )
        )
    fleet, registered = done.fleet, done.registered
    if args.target is not None and registered is None:
        console.print(
            f"{len(fleet)} {fleet.kind} devices written to {done.path} (mode 0600); profile "
            f"{done.profile} registers none (provision via {done.via})",
            highlight=False,
            soft_wrap=True,
        )
    elif registered is None:
        console.print(
            f"{len(fleet)} {fleet.kind} devices written to {done.path} (mode 0600), not registered"
        )
    else:
        console.print(
            f"{len(fleet)} {fleet.kind} devices in {done.path} (mode 0600): {registered.created} "
            f"registered, {registered.already_registered} already known, in "
            f"{done.elapsed_s:.2f} s",
            highlight=False,
            soft_wrap=True,  # a long path must not fold the line
        )
    return ExitCode.OK
