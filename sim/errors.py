"""The simulator's exception tree: one root; each message is one readable line, never a secret."""

from __future__ import annotations

__all__ = [
    "AdminKeyRejected",
    "ConfigError",
    "FleetError",
    "FleetMismatch",
    "SimError",
    "TargetError",
    "TargetUnreachable",
]


class SimError(Exception):
    """Root of every error the simulator reports to a user as one line."""


class ConfigError(SimError):
    """An option or option combination that cannot work."""


class FleetError(SimError):
    """A fleet file that is missing, unreadable or not a fleet."""


class FleetMismatch(FleetError):
    """The fleet file and the target's device registry disagree."""


class TargetError(SimError):
    """The target answered something the simulator cannot go on with."""


class TargetUnreachable(TargetError):
    """No HTTP answer from the target at all."""


class AdminKeyRejected(TargetError):
    """The target refused the admin key."""
