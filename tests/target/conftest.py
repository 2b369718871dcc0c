"""Targets shared across the target tests: one server per algorithm, started on first use.

Tests on a shared target register their own uniquely named devices and never rotate keys or
change settings; tests that do use ``start_target`` for a server of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sim.run.embedded import EmbeddedTarget

SharedTarget = Callable[[str], EmbeddedTarget]


@pytest.fixture(scope="session")
def shared_target() -> Iterator[SharedTarget]:
    """``shared_target(alg)``: a running target for ``alg``, the same one for the whole session."""
    running: dict[str, EmbeddedTarget] = {}

    def get(alg: str) -> EmbeddedTarget:
        if alg not in running:
            running[alg] = EmbeddedTarget(alg).start()
        return running[alg]

    yield get
    for target in running.values():
        target.stop()
