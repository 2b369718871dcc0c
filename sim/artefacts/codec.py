"""Reading and writing the product's JSON artefacts: ``summary.json``, the smoke's ``summary.json``,
``attack.json``, ``compare.json``, ``capacity.json`` and the fleet file, read and written here and
nowhere else; each one's type is in its own module beside this one.

Each artefact is a ``TypedDict``: the producers build plain dicts that mypy checks key by key,
and :mod:`msgspec` validates a file against the same type when it is read back
(:func:`read_summary`, ...) and generates its JSON Schema (``python -m sim.artefacts.schemas``
writes them to ``docs/schemas/``). Field meanings are in docs/results.md and the command pages.
Latencies are microseconds; times are Unix seconds.

A reader ignores keys it does not know (msgspec's rule for ``TypedDict``), so adding a key to an
artefact keeps old readers working; a key of the wrong type is refused with the path to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import msgspec

from sim.artefacts.attack_file import ATTACK_SCHEMA, AttackFile
from sim.artefacts.capacity_file import CAPACITY_SCHEMA, CapacityFile
from sim.artefacts.compare_file import COMPARE_SCHEMA, CompareFile
from sim.artefacts.fleet_file import FLEET_SCHEMA, FleetFile
from sim.artefacts.smoke_file import SMOKE_SCHEMA, SmokeFile
from sim.artefacts.summary_file import SUMMARY_SCHEMA, Summary
from sim.errors import SimError

__all__ = [
    "ARTEFACTS",
    "ArtefactError",
    "decode_artefact",
    "fleet_json",
    "read_attack",
    "read_capacity",
    "read_compare",
    "read_fleet",
    "read_smoke",
    "read_summary",
    "read_summary_or_smoke",
    "write_artefact",
    "write_summary",
]


class ArtefactError(SimError):
    """A JSON artefact that cannot be read, is not JSON, or does not match its type."""


# Schema file name (docs/schemas/<name>.schema.json) -> the type it is generated from.
ARTEFACTS: dict[str, type] = {
    "summary": Summary,
    "smoke": SmokeFile,
    "attack": AttackFile,
    "compare": CompareFile,
    "capacity": CapacityFile,
    "fleet": FleetFile,
}

T = TypeVar("T")

# Each artefact's schema name and what a person calls it, for the one-line errors.
_KINDS: dict[type, tuple[str, str]] = {
    Summary: (SUMMARY_SCHEMA, "fleetbench summary.json"),
    SmokeFile: (SMOKE_SCHEMA, "fleetbench smoke summary.json"),
    AttackFile: (ATTACK_SCHEMA, "fleetbench attack.json"),
    CompareFile: (COMPARE_SCHEMA, "fleetbench compare.json"),
    CapacityFile: (CAPACITY_SCHEMA, "fleetbench capacity.json"),
    FleetFile: (FLEET_SCHEMA, "fleet file"),
}


def decode_artefact(data: bytes, kind: type[T], name: str) -> T:
    """Parse and validate one artefact; ``name`` (a path) goes in the one-line error."""
    schema, noun = _KINDS.get(kind, (kind.__name__, "file"))
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as e:
        # Another file altogether is named as such, not by its first odd field.
        head = msgspec.json.decode(data)
        if not isinstance(head, dict) or head.get("schema") != schema:
            raise ArtefactError(f"{name} is not a {noun} (schema {schema})") from e
        raise ArtefactError(f"{name} is not a valid {schema} file: {e}") from e
    except msgspec.DecodeError as e:
        raise ArtefactError(f"{noun} {name} is not readable JSON: {e}") from e


def _read(path: Path, kind: type[T]) -> T:
    noun = _KINDS.get(kind, ("", "file"))[1]
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ArtefactError(f"{noun} {path} not found") from e
    except OSError as e:
        raise ArtefactError(f"{noun} {path} cannot be read: {e.strerror}") from e
    return decode_artefact(data, kind, str(path))


def write_artefact(body: object, path: Path) -> None:
    """Write an artefact as the product always has: indented JSON and a final newline."""
    path.write_text(json.dumps(body, indent=2) + "\n")


def read_summary(path: Path) -> Summary:
    return _read(path, Summary)


def write_summary(summary: Summary, path: Path) -> None:
    write_artefact(summary, path)


def read_smoke(path: Path) -> SmokeFile:
    return _read(path, SmokeFile)


def read_attack(path: Path) -> AttackFile:
    return _read(path, AttackFile)


def read_compare(path: Path) -> CompareFile:
    return _read(path, CompareFile)


def read_capacity(path: Path) -> CapacityFile:
    return _read(path, CapacityFile)


def read_fleet(path: Path) -> FleetFile:
    return _read(path, FleetFile)


def fleet_json(body: FleetFile) -> str:
    """A fleet file's text: compact, as it may hold 100,000 devices. The caller writes it, to a
    file it created mode 0600 (the file holds every device's secret and private key)."""
    return json.dumps(body, separators=(",", ":"))


def read_summary_or_smoke(path: Path) -> Summary | SmokeFile:
    """A run's ``summary.json`` or a smoke's, told apart by its ``schema``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ArtefactError(f"summary {path} not found") from e
    except OSError as e:
        raise ArtefactError(f"summary {path} cannot be read: {e.strerror}") from e
    try:
        head = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise ArtefactError(f"summary {path} is not readable JSON: {e}") from e
    schema = head.get("schema") if isinstance(head, dict) else None
    if schema == SMOKE_SCHEMA:
        return decode_artefact(data, SmokeFile, str(path))
    if schema == SUMMARY_SCHEMA:
        return decode_artefact(data, Summary, str(path))
    raise ArtefactError(f"{path} is not a fleetbench summary.json (schema {schema!r})")
