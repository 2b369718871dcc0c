"""The Locust process's run-wide state, shared by every device of it: the account
(``MEASUREMENTS``), the run's configuration, fleet and profile (each read once), the signing key
of minted tokens, the target's issuer and the counter that hands each user its own device."""

from __future__ import annotations

import fcntl
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

import requests
from locust.runners import WorkerRunner

from sim.account.measure import Measurements
from sim.device.settings import SimConfig
from sim.errors import TargetUnusable
from sim.fleet.model import Fleet, load_fleet
from sim.profiles import Profile, load_profile
from sim.shape.stages import Stages
from sim.untrusted import fetch

__all__ = [
    "DEFAULT_ISSUER",
    "MEASUREMENTS",
    "STATE",
    "claim_index",
    "fleet_size",
    "issuer",
    "origin_file",
    "run_config",
    "run_fleet",
    "run_profile",
    "run_stages",
    "set_origin",
    "signing_key",
]

DEFAULT_ISSUER = "urn:fleetbench:target"

MEASUREMENTS = Measurements()
STATE: dict[str, Any] = {"claimed": 0}


def run_config() -> SimConfig:
    """The run's settings: from the master on a remote worker (:mod:`sim.device.cluster`), else the
    file or variables this process was started with."""
    received: SimConfig | None = STATE.get("settings")
    return received if received is not None else _local_config()


@cache
def _local_config() -> SimConfig:
    return SimConfig.from_env()


@cache
def run_profile() -> Profile:
    """The run's profile; ``${VAR}`` from this process's environment (secrets stay there)."""
    return load_profile(run_config().profile, os.environ)


@cache
def run_stages() -> Stages | None:
    """The run's load stages, parsed once; None without ``--stages``."""
    return run_config().parsed_stages


@cache
def signing_key() -> Any:
    """The key minted tokens are signed with: the shared secret, or the private key file's."""
    token = run_profile().token
    if token.private_key_file:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(Path(token.private_key_file).read_bytes(), password=None)
    return token.secret


@cache
def run_fleet() -> Fleet:
    return load_fleet(Path(run_config().fleet))


def fleet_size() -> int:
    """The whole fleet's size: dealt in the settings on a remote worker, else the fleet file's."""
    return run_config().fleet_size or len(run_fleet())


def issuer(host: str) -> str:
    """The ``aud`` of device assertions: configured, or the target's RFC 8414 metadata, once."""
    config = run_config()
    if config.issuer:
        return config.issuer
    if "issuer" not in STATE:
        try:
            url = host.rstrip("/") + "/.well-known/oauth-authorization-server"
            with requests.Session() as session:
                found_issuer = fetch(session, "GET", url, timeout_s=10).json()["issuer"]
            STATE["issuer"] = found_issuer if isinstance(found_issuer, str) else DEFAULT_ISSUER
        except (TargetUnusable, ValueError, KeyError, TypeError):
            STATE["issuer"] = DEFAULT_ISSUER
    found: str = STATE["issuer"]
    return found


def claim_index(environment: Any) -> int:
    """The next unclaimed device: a counter shared by every process of the run through a locked
    file, or, standalone, this process's counter interleaved with the other workers'."""
    claim_file = run_config().claim_file
    if claim_file:
        with open(claim_file, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            index = int(f.read().strip() or 0)
            f.seek(0)
            f.truncate()
            f.write(str(index + 1))
            return index
    runner = environment.runner
    workers = int(os.environ.get("FLEETBENCH_WORKERS", "1"))
    offset = max(getattr(runner, "worker_index", 0), 0) if isinstance(runner, WorkerRunner) else 0
    index = offset + STATE["claimed"] * workers
    STATE["claimed"] += 1
    return int(index)


def set_origin(origin_s: float) -> None:
    """Time 0 of the load stages (and the open model's schedules) in this process: the run's
    start as the master saw it. Workers start their test a second or more after the master
    (Locust's first spawn message); each counting from its own start would send the stages
    late and lose their last second to the master's stop."""
    STATE["origin_s"] = origin_s
    STATE["origin_perf_s"] = time.perf_counter() - (time.time() - origin_s)


def origin_file(claim_file: str) -> Path:
    """Where the master of local workers writes its start for them (beside the claim file)."""
    return Path(claim_file + ".origin")
