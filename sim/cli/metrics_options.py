"""``--metrics-port``, ``--metrics-bind`` and ``--otlp``: the live metrics of the commands that
run load (run, smoke, capacity, compare), served or pushed for the length of the command."""

from __future__ import annotations

import argparse

from sim.cli.options import port_number
from sim.output.metrics_endpoint import MetricsOptions

__all__ = ["add_metrics_options", "metrics_options"]


def add_metrics_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("live metrics (docs/metrics.md)")
    group.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="N",
        help="serve the run's Prometheus metrics on this port while it works",
    )
    group.add_argument(
        "--metrics-bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address for --metrics-port (default 127.0.0.1: this host only)",
    )
    group.add_argument(
        "--otlp",
        metavar="URL",
        help="push the same metrics over OTLP/HTTP to this collector (http://host:4318)",
    )


def metrics_options(args: argparse.Namespace) -> MetricsOptions:
    """The command's metrics options; none for a command without them."""
    return MetricsOptions(
        port=getattr(args, "metrics_port", None),
        bind=getattr(args, "metrics_bind", "127.0.0.1"),
        otlp_url=getattr(args, "otlp", None),
    )
