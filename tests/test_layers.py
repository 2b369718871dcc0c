"""The house's shape (docs/architecture.md): imports run one way, at most ten floors high.

A room is a folder of ``sim/`` or ``target/`` (``sim/run``), a module at the top of either
(``sim/errors.py``), or ``benchmarks``; a floor is one room on the longest chain of imports. Every
import counts, a function's own included: hiding one inside a function hides nothing here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from graphlib import TopologicalSorter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "target", "benchmarks")
MAX_FLOORS = 10
MAX_FOLDER_MODULES = 15


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _room(module: str) -> str | None:
    """The room a module lives in; None for a package's own ``__init__`` (its docstring only)."""
    parts = MODULES[module].relative_to(REPO).parts
    if parts[0] == "benchmarks":
        return "benchmarks"
    if len(parts) > 2:
        return "/".join(parts[:2])
    return None if parts[1] == "__init__.py" else "/".join(parts)


def _imported(module: str) -> Iterator[str]:
    """The project modules ``module`` imports (a name imported from a package counts as its
    module when it is one, else as the package)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*above, *([node.module] if node.module else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def _arrows() -> dict[str, set[str]]:
    arrows: dict[str, set[str]] = {}
    for module in MODULES:
        room = _room(module) or module.replace(".", "/")
        for imported in _imported(module):
            other = _room(imported)
            if other is not None and other != room:
                arrows.setdefault(room, set()).add(other)
    return arrows


ARROWS = _arrows()


@cache
def _longest(room: str) -> tuple[str, ...]:
    """The longest chain of imports down from ``room`` (the graph has no circle)."""
    below = [_longest(other) for other in ARROWS.get(room, ())]
    return (room, *max(below, key=len, default=()))


def test_no_circle_and_at_most_ten_floors() -> None:
    tuple(TopologicalSorter(ARROWS).static_order())  # a circle: CycleError naming it
    chains = [_longest(room) for room in ARROWS]
    highest = max(chains, key=len)
    assert len(highest) <= MAX_FLOORS, " -> ".join(highest)


def test_the_target_never_imports_the_simulator_or_the_benchmarks() -> None:
    upward = {
        room: sorted(other for other in others if not other.startswith("target/"))
        for room, others in ARROWS.items()
        if room.startswith("target/")
    }
    assert {room: others for room, others in upward.items() if others} == {}


def test_nothing_imports_the_benchmarks() -> None:
    assert [room for room, others in ARROWS.items() if "benchmarks" in others] == []


def test_no_folder_holds_more_than_fifteen_modules() -> None:
    for package in ("sim", "target"):
        for folder in (REPO / package).rglob("*"):
            if folder.is_dir() and folder.name != "__pycache__":
                modules = [path for path in folder.glob("*.py") if path.name != "__init__.py"]
                assert len(modules) <= MAX_FOLDER_MODULES, folder.relative_to(REPO)
