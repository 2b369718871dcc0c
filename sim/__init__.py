"""The fleetbench virtual device fleet."""

__version__ = "0.1.0"
