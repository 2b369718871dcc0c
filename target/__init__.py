"""The reference device API that fleetbench benchmarks."""

__version__ = "0.1.0"
