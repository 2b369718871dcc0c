"""The test APIs' launcher: a server that never says it listens fails the test in bounded time."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.apis.serve import serve_listening

pytestmark = pytest.mark.slow  # each test starts a server, a run or the command


def test_a_server_that_never_listens_fails_within_the_bound() -> None:
    started = time.monotonic()
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        pytest.raises(AssertionError, match=r"did not start in 1\.0 s"),
        serve_listening(silent, os.environ, timeout_s=1.0),
    ):
        pass
    assert time.monotonic() - started < 15  # bounded wait, then the process is stopped


def test_a_server_that_exits_fails_at_once() -> None:
    exits = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(AssertionError, match="did not start"), serve_listening(exits, os.environ):
        pass
