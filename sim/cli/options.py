"""Argument types and option groups shared by the ``fleetbench`` commands.

The admin key is read here and nowhere else: ``--admin-key``, or ``FLEETBENCH_ADMIN_KEY`` (better:
flags show in ``ps``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NoReturn, cast

from rich.console import Console

from sim.errors import ConfigError
from sim.exits import ExitCode
from sim.profiles.mqtt_settings import MQTT_SESSIONS, TRANSPORTS, MqttSessions
from sim.run.machine_share import parse_cpus

__all__ = [
    "ADMIN_KEY_ENV",
    "Parser",
    "add_embedded_algs",
    "add_mqtt_session_option",
    "add_sweep_transport_options",
    "add_target_options",
    "add_transport_options",
    "cpus",
    "duration",
    "embedded_algs",
    "logger",
    "mqtt_session_of",
    "positive_float",
    "positive_int",
    "ratio",
    "seconds",
    "tolerance",
]

ADMIN_KEY_ENV = "FLEETBENCH_ADMIN_KEY"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one readable line, not a usage dump
        self.exit(ExitCode.ERROR, f"fleetbench: error: {message}\n")


def cpus(text: str) -> set[int]:
    """``--generator-cpus``: cores this machine gives fleetbench."""
    try:
        return parse_cpus(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from e
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


def seconds(text: str) -> float:
    """``30``, ``30s``, ``2m`` or ``1h`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = float(number) * scale
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 30, 30s or 2m)") from e
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


@cache
def _locust_timespan() -> Callable[[str], int]:
    """Locust's own ``--run-time`` parser (``30``, ``30s``, ``2m``, ``1h30m``), loaded alone:
    importing the ``locust`` package monkey-patches the standard library with gevent, which the
    orchestrator (threads, subprocesses, signals) must not be."""
    spec = importlib.util.find_spec("locust")
    if spec is None or spec.origin is None:
        raise ConfigError("Locust is not installed")
    path = Path(spec.origin).parent / "util" / "timespan.py"
    module_spec = importlib.util.spec_from_file_location("_fleetbench_locust_timespan", path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load Locust's timespan parser from {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    parse: Callable[[str], int] = module.parse_timespan
    return parse


def duration(text: str) -> float:
    """A run time as Locust takes it: whole seconds, ``30``, ``30s``, ``2m``, ``1h30m``."""
    try:
        value = _locust_timespan()(text.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (whole seconds: 30, 30s, 2m, 1h30m)"
        ) from e
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    return float(value)


def ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from e
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def tolerance(text: str) -> float:
    """``10%`` or ``10`` -> 0.10."""
    number = text.strip().removesuffix("%")
    try:
        value = float(number) / 100
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r} (say 10%)") from e
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage of 0 or more, not {text!r}")
    return value


def add_target_options(
    p: argparse.ArgumentParser, target_help: str = "a running target (default: start our own)"
) -> None:
    p.add_argument("--target", metavar="URL", help=target_help)
    p.add_argument(
        "--admin-key",
        default=os.environ.get(ADMIN_KEY_ENV),
        help=f"the target's admin key (prefer {ADMIN_KEY_ENV}: flags show in ps)",
    )


def add_master_options(p: argparse.ArgumentParser) -> None:
    """``--master``, ``--bind``, ``--expect-workers``, ``--worker-wait``: the load from remote
    ``fleetbench worker`` processes (run, capacity)."""
    p.add_argument(
        "--master", action="store_true", help="deal the fleet to remote fleetbench workers"
    )
    p.add_argument(
        "--bind", default="127.0.0.1:5557", metavar="HOST:PORT",
        help="with --master: where workers connect (they must prove FLEETBENCH_CLUSTER_KEY)",
    )  # fmt: skip
    p.add_argument("--expect-workers", type=positive_int, help="with --master: workers to wait for")
    p.add_argument(
        "--worker-wait", type=positive_int, default=60, help="with --master: seconds to wait"
    )


def add_transport_options(p: argparse.ArgumentParser, *, broker_port: bool = True) -> None:
    """``--transport``: how the devices send their readings; ``--mqtt-port``: a --target's
    broker (the embedded target starts its own)."""
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="http",
        help="http (default), or mqtt: one session per device, the token as its CONNECT password,"
        " readings published at QoS 1 (the embedded target starts its broker)",
    )
    if broker_port:
        p.add_argument(
            "--mqtt-port",
            type=port_number,
            metavar="N",
            help="with --transport mqtt and --target: the broker's port on the target's host",
        )


def add_mqtt_session_option(p: argparse.ArgumentParser, default: MqttSessions) -> None:
    """``--mqtt-session``: a session held across a device's readings, or one per reading. The
    parsed default is None: given without ``--transport mqtt`` it is refused, not ignored."""
    p.add_argument(
        "--mqtt-session",
        choices=MQTT_SESSIONS,
        help="with --transport mqtt: held (one CONNECT per token lifetime) or per-reading"
        " (CONNECT, PUBLISH, DISCONNECT for each reading: a token check per reading);"
        f" default {default}",
    )


def mqtt_session_of(
    transport: str, session: str | None, default: MqttSessions, mqtt_ports: list[str] | None = None
) -> MqttSessions:
    """The sessions of ``--transport mqtt`` (``default`` when not given); ``--mqtt-session`` or
    ``--mqtt-port`` with HTTP devices is one line."""
    if transport != "mqtt":
        if session is not None:
            raise ConfigError("--mqtt-session is the sessions of --transport mqtt")
        if mqtt_ports:
            raise ConfigError("--mqtt-port is the broker of --transport mqtt")
    return cast(MqttSessions, session or default)


def add_sweep_transport_options(p: argparse.ArgumentParser) -> None:
    """compare's and capacity's ``--transport``: a broker port per algorithm's ``--target``, and
    sessions per reading by default (every reading a CONNECT: the auth cost is the question)."""
    add_transport_options(p, broker_port=False)
    p.add_argument(
        "--mqtt-port",
        action="append",
        default=[],
        metavar="[ALG=]N",
        help="with --transport mqtt: the broker's port on ALG's --target host (repeat per"
        " algorithm; bare: every algorithm)",
    )
    add_mqtt_session_option(p, "per-reading")


def add_profile_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="fleetbench",
        metavar="NAME|FILE",
        help="how to talk to the target: a shipped profile or a .toml file (default fleetbench)",
    )


def add_embedded_algs(p: argparse.ArgumentParser, default: tuple[str, ...], what: str) -> None:
    p.add_argument(
        "--algs", help=f"embedded target's algorithms{what} (default {','.join(default)})"
    )


def embedded_algs(args: argparse.Namespace, default: tuple[str, ...]) -> tuple[str, ...]:
    """``--algs`` as a tuple; it picks the embedded target's algorithms, so not with --target."""
    if args.algs is None:
        return default
    if args.target is not None:
        raise ConfigError("--algs picks the embedded target's algorithms; drop it with --target")
    return tuple(a.strip() for a in args.algs.split(",") if a.strip())


def logger(console: Console, quiet: bool) -> Callable[[str], None]:
    """A command's progress messages: dim lines on the console, none when quiet."""

    def log(message: str) -> None:
        if not quiet:
            console.print(f"[dim]fleetbench: {message}[/dim]", highlight=False)

    return log
