"""``fleetbench probe``: parse, run :func:`sim.probe.run_probe`, print, exit code.

Exit 0 when the profile reads the API consistently, 1 when not (each step names the profile
line to change), 2 on bad input (one line, from the CLI's SimError handler).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sim.cli.exits import ExitCode
from sim.cli.options import ADMIN_KEY_ENV

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
    result = run_probe(
        ProbeConfig(profile, args.target, args.admin_key, expiry_wait_s=args.expiry_wait)
    )
    table = Table(title=f"probe: profile {result.profile} against {result.target}")
    for column in ("probe", "request", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("answer", overflow="fold", ratio=1)
    for column in ("profile reads", "correct API", ""):
        table.add_column(column, no_wrap=True)
    for step in result.steps:
        mark = "[green]ok[/green]" if step.consistent else "[red]MISMATCH[/red]"
        table.add_row(
            step.name, step.request, str(step.status), escape(step.excerpt), step.classified,
            step.expected, mark,
        )  # fmt: skip
    console.print(table)
    for skipped in result.skipped:
        console.print(f"skipped {escape(skipped)}", highlight=False, soft_wrap=True)
    for step in result.steps:
        if not step.consistent:
            console.print(
                f"[red]{step.name}:[/red] {escape(step.fix)}", highlight=False, soft_wrap=True
            )
    if result.consistent:
        console.print(f"profile {result.profile} reads this API consistently", highlight=False)
        return ExitCode.OK
    return ExitCode.FAILED
