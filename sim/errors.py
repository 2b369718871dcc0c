"""The simulator's exception tree: one root; each message is one readable line, never a secret.

The command line turns every :class:`SimError` into one line on stderr and an exit code
(:mod:`sim.exits`); nothing outside this tree should reach a user.
"""

from __future__ import annotations

__all__ = [
    "AdminKeyRejected",
    "AnswerUnreadable",
    "CapacityError",
    "CompareError",
    "ConfigError",
    "DiffError",
    "FleetError",
    "FleetMismatch",
    "Interrupted",
    "SimError",
    "TargetStartError",
    "TargetUnreachable",
    "TargetUnusable",
    "ThresholdsError",
]


class SimError(Exception):
    """Root of every error the simulator reports to a user as one line."""


class ConfigError(SimError):
    """An option or option combination that cannot work."""


class ThresholdsError(ConfigError):
    """A thresholds file that cannot be read, with the line at fault when known."""


class FleetError(SimError):
    """A fleet file that is missing, unreadable or not a fleet."""


class FleetMismatch(FleetError):
    """The fleet file and the target's device registry disagree."""


class TargetUnusable(SimError):
    """The target cannot be used: not started, not reachable, or answering what we cannot use.

    (Not :class:`target.errors.TargetError`, which is the reference target's own refusal tree.)
    """


class TargetStartError(TargetUnusable):
    """The embedded target did not come up."""


class TargetUnreachable(TargetUnusable):
    """No HTTP answer from the target at all."""


class AdminKeyRejected(TargetUnusable):
    """The target refused the admin key."""


class AnswerUnreadable(TargetUnusable):
    """An answer under load that could not be read as HTTP: counted as a transport error."""


class CompareError(SimError):
    """A compare run that cannot be done as asked, or one of its runs that failed."""


class CapacityError(SimError):
    """A capacity search that cannot be done as asked (a bad --slo, --error-budget, ...)."""


class DiffError(SimError):
    """A file that is not a fleetbench summary."""


class Interrupted(SimError):
    """The work was stopped by SIGINT or SIGTERM before it could finish."""
