"""The exit codes of every ``fleetbench`` command, defined once."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "verdict_exit"]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the work finished and its verdict is FAIL (threshold, regression, accepted token)
    ERROR = 2  # bad input, unreachable target, refused key, mismatched fleet
    INTERRUPTED = 130  # SIGINT or SIGTERM, as a shell reports a SIGINT-ed command


def verdict_exit(passed: bool, interrupted: bool = False) -> ExitCode:
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if passed else ExitCode.FAILED
