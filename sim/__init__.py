"""The fleetbench virtual device fleet."""

from target import __version__

__all__ = ["__version__"]
