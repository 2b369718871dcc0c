"""``fleetbench worker``: join a ``fleetbench run --master`` and drive the devices it deals."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rich.console import Console

from sim.cli.options import positive_int
from sim.device.seal import KEY_ENV, ClusterKey
from sim.device.settings import REFUSED_EXIT
from sim.errors import ConfigError
from sim.exits import ExitCode
from sim.run.distributed import parse_address

__all__ = ["add_parser", "command"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "worker", help="join a fleetbench run --master and drive the devices it deals"
    )
    p.set_defaults(handler=command)
    p.add_argument(
        "--master", required=True, metavar="HOST[:PORT]", help="the master's --bind (port 5557)"
    )
    p.add_argument(
        "--processes", type=positive_int, default=1, help="Locust workers on this host (1 a core)"
    )
    p.add_argument(
        "--stay",
        action="store_true",
        help="join again after each run the master ends (fleetbench capacity --master: a master"
        " per step), until none comes",
    )


def command(args: argparse.Namespace, console: Console) -> int:
    """0 when the master ended the run; 2 when Locust's worker failed (master unreachable) or
    the master refused this worker (its own line says why)."""
    from sim.run.worker import WorkerConfig, run_worker

    address = parse_address(args.master, "--master")
    if ClusterKey.from_env(os.environ) is None:
        raise ConfigError(
            f"no cluster key: set {KEY_ENV} to the key the master printed (or was given)"
        )
    console.print(f"joining the master at {address}", highlight=False)
    code = run_worker(WorkerConfig(master=args.master, processes=args.processes, stay=args.stay))
    if code == REFUSED_EXIT:
        return ExitCode.ERROR  # Locust's worker printed the master's refusal
    if code != 0:
        print(f"fleetbench: error: the Locust worker exited with {code}", file=sys.stderr)
        return ExitCode.ERROR
    return ExitCode.OK
