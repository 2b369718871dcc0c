"""Access tokens kept from one run of a fleet for the next against the same service.

``fleetbench capacity`` runs its steps as separate runs of one fleet against one service. Each
run's devices would otherwise log in again at its start: on an API whose login is costly (a
password hash per call) the search then measured its own login burst. With ``kept_tokens`` set
(a private folder of the search's), each Locust process writes the tokens its devices hold when
its run stops, and a device of the next run starts with its kept token if it is still valid,
renewing it as a token it had fetched itself (when due, or on a refusal).

The files hold bearer tokens: they live in the search's temporary folder, readable by the user
only, and are removed with it; nothing of them reaches a log or a report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the orchestrator reads these files too: no Locust imported here
    from sim.device.tokens import HeldToken

__all__ = ["keep", "kept_devices", "kept_token", "read_kept", "save_kept", "start_keeping"]

# The tokens of this process's devices, by device id: each device's own dict of held tokens (by
# scenario), the very object it renews in, so what is written at the stop is what it held last.
_HELD: dict[str, dict[Any, HeldToken]] = {}


def start_keeping() -> None:
    """A run starts: no device of this process holds anything yet."""
    _HELD.clear()


def keep(device_id: str, tokens: dict[Any, HeldToken]) -> None:
    _HELD[device_id] = tokens


def save_kept(folder: str) -> None:
    """Write this process's devices' tokens to ``folder`` (one file per process, owner-only)."""
    if not _HELD or not os.path.isdir(folder):
        return  # nothing held, or a remote worker: the folder is on the master's host
    data = {
        device: {scenario: asdict(held) for scenario, held in tokens.items()}
        for device, tokens in _HELD.items()
        if tokens
    }
    path = Path(folder) / f"tokens-{os.getpid()}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


@cache
def _found(folder: str) -> dict[str, dict[str, dict[str, Any]]]:
    """What earlier runs kept, read once in a run's process (its devices start together)."""
    return read_kept(folder)


def kept_devices(folder: str) -> int:
    """How many devices hold a token kept in ``folder`` that is still valid."""
    now = time.time() + 1.0
    kept = read_kept(folder).values()
    return sum(1 for tokens in kept if any(float(t["exp"]) > now for t in tokens.values()))


def read_kept(folder: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every token an earlier run kept in ``folder``, by device and scenario (the latest expiry
    wins where two processes kept one for the same device)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(Path(folder).glob("tokens-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a file being written: those devices log in as before
        for device, tokens in data.items():
            for scenario, held in tokens.items():
                mine = found.setdefault(device, {})
                if scenario not in mine or held["exp"] > mine[scenario]["exp"]:
                    mine[scenario] = held
    return found


def kept_token(folder: str, device_id: str, scenario: str) -> dict[str, Any] | None:
    """The token an earlier run left this device for ``scenario`` (a ``HeldToken``'s fields),
    while it is still valid."""
    held = _found(folder).get(device_id, {}).get(scenario)
    if held is None or float(held["exp"]) <= time.time() + 1.0:
        return None
    return held
