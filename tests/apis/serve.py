"""Start a test API as a real process on a free loopback port: it prints ``listening PORT``
once it is bound; the wait for that line is bounded, and the process is stopped after."""

from __future__ import annotations

import contextlib
import selectors
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serve_listening(
    command: list[str], env: Mapping[str, str], timeout_s: float = 20.0
) -> Iterator[str]:
    """The URL of ``command``'s server, once it printed ``listening PORT`` (within
    ``timeout_s``, else the test fails naming the command)."""
    process = subprocess.Popen(
        command, cwd=REPO, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            line: list[str] = []
            while not line and time.monotonic() < deadline and process.poll() is None:
                if selector.select(timeout=max(deadline - time.monotonic(), 0.0)):
                    line = process.stdout.readline().split()
        assert line[:1] == ["listening"], f"{command[-2:]} did not start in {timeout_s} s: {line}"
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
