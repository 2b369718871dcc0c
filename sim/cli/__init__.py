"""The ``fleetbench`` command line: argument parsing, output and exit codes, one module per command.

Each command module has ``add_parser(commands)``, which registers its subcommand and its
``command(args, console) -> exit code`` handler; the work itself is an engine outside this package
(a typed config in, a typed result out, no argparse, no printing). A new subcommand is a new module
here and one entry in :data:`COMMANDS`; a new option is a line in its command's ``add_parser`` and
a field of its engine's config.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from sim import __version__
from sim.cli import attack, capacity, compare, diff, probe, provision, run, smoke, worker
from sim.cli.metrics_options import metrics_options
from sim.cli.options import Parser
from sim.errors import Interrupted, SimError
from sim.exits import ExitCode
from sim.output.metrics_endpoint import exporting
from sim.untrusted import shown

__all__ = ["build_parser", "main"]

# In the order --help lists them.
COMMANDS = (run, worker, provision, compare, capacity, smoke, attack, diff, probe)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fleetbench", description="Load-test JWT authentication for IoT fleets.")
    parser.add_argument("--version", action="version", version=f"fleetbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def _note(message: str) -> None:
    print(f"fleetbench: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Not a terminal (CI logs, pipes): wide enough that the table does not fold.
    console = Console(width=None if sys.stdout.isatty() else 140)
    try:
        with exporting(metrics_options(args), _note):
            code: int = args.handler(args, console)
    except Interrupted as e:
        print(f"fleetbench: error: {e}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except SimError as e:  # one line, and no escape sequence an answer may have put in it
        print(f"fleetbench: error: {shown(e)}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("fleetbench: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return code
