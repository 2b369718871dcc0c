"""``fleetbench probe``: parse, run :func:`sim.probe.run_probe`, print, exit code.

Exit 0 when the profile reads the API consistently, 1 when not (each step names the profile
line to change), 2 on bad input (one line, from the CLI's SimError handler).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sim.cli.options import ADMIN_KEY_ENV
from sim.exits import ExitCode

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    probe = commands.add_parser(
        "probe", help="check that a target profile reads an API's answers the way it gives them"
    )
    probe.set_defaults(handler=command)
    probe.add_argument("--profile", required=True, metavar="NAME|FILE", help="the profile")
    probe.add_argument("--target", required=True, metavar="URL", help="the running API")
    probe.add_argument(
        "--admin-key",
        default=os.environ.get(ADMIN_KEY_ENV),
        help="our target's admin key, for profiles that register through it (prefer the env)",
    )
    probe.add_argument(
        "--expiry-wait",
        type=float,
        default=20.0,
        metavar="S",
        help="longest wait for the API's own token to expire (default 20 s; else skipped)",
    )


def command(args: argparse.Namespace, console: Console) -> int:
    from sim.errors import ConfigError
    from sim.probe import ProbeConfig, run_probe
    from sim.profiles import load_profile

    if not args.target.startswith(("http://", "https://")):
        raise ConfigError(f"--target must be an http(s) URL, not {args.target!r}")
    if not 0 <= args.expiry_wait <= 600:
        raise ConfigError("--expiry-wait must be between 0 and 600 seconds")
    profile = load_profile(args.profile, os.environ)
    # Names only, never values: what the operator's environment lends this profile.
    reads = ", ".join(profile.reads) if profile.reads else "none"
    console.print(Text(f"profile {profile.name} reads environment variables: {reads}"))
    result = run_probe(
        ProbeConfig(profile, args.target, args.admin_key, expiry_wait_s=args.expiry_wait)
    )
    # Every cell is Text (never markup): the answer's excerpt, and the classes, came from the API.
    table = Table(title=Text(f"probe: profile {result.profile} against {result.target}"))
    for column in ("probe", "request", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("answer", overflow="fold", ratio=1)
    for column in ("profile reads", "correct API", ""):
        table.add_column(column, no_wrap=True)
    for step in result.steps:
        mark = Text("ok", "green") if step.consistent else Text("MISMATCH", "red")
        cells = (step.name, step.request, str(step.status), step.excerpt, step.classified)
        table.add_row(*map(Text, cells), Text(step.expected), mark)
    console.print(table)
    for skipped in result.skipped:
        console.print(Text(f"skipped {skipped}"), highlight=False, soft_wrap=True)
    for step in result.steps:
        if not step.consistent:
            console.print(
                Text.assemble((f"{step.name}:", "red"), " ", step.fix),
                highlight=False,
                soft_wrap=True,
            )
    if result.consistent:
        console.print(Text(f"profile {result.profile} reads this API consistently"))
        return ExitCode.OK
    return ExitCode.FAILED
