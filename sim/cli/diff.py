"""``fleetbench diff BASE.json NEW.json``: two runs side by side, exit 1 if NEW regressed.

Its parser and printing still live in :mod:`sim.diff` (helper 14a is typing that module's inputs
in parallel); this registers them like every other command.
TODO(issue 14): move ``add_diff_parser``/``diff_command`` here once that work is merged.
"""

from __future__ import annotations

from typing import Any

from sim.cli.options import positive_int
from sim.diff import add_diff_parser, diff_command

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    add_diff_parser(commands, positive_int)
    commands.choices["diff"].set_defaults(handler=diff_command)
