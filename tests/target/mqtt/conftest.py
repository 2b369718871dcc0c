"""One MQTT-speaking target per module, for tests that only add their own devices to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.run.embedded import EmbeddedTarget


@pytest.fixture(scope="module")
def target() -> Iterator[EmbeddedTarget]:
    started = EmbeddedTarget("ES256", mqtt=True).start()
    yield started
    started.stop()
