"""Shared fixtures: real targets on loopback ports, real keys, real SQLite files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.run.embedded import EmbeddedTarget

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"

StartTarget = Callable[..., EmbeddedTarget]


@pytest.fixture
def start_target() -> Iterator[StartTarget]:
    """Start ``python -m target`` (real uvicorn on a free loopback port); stopped after the test."""
    started: list[EmbeddedTarget] = []

    def start(alg: str = "ES256", **flags: Any) -> EmbeddedTarget:
        target = EmbeddedTarget(alg, **flags).start()
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()
