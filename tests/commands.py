"""The ``fleetbench`` command as a user runs it: a child process, its output captured, bounded;
and, for refusals that happen before anything starts, the same command line run in this process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from sim.cli import main

REPO = Path(__file__).resolve().parents[1]


def fleetbench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``fleetbench ARGS`` from the repository, without the caller's ``FLEETBENCH_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@contextlib.contextmanager
def _without_fleetbench_variables() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("FLEETBENCH_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def fleetbench_here(*args: str) -> subprocess.CompletedProcess[str]:
    """``fleetbench ARGS`` through the same entry point (``sim.cli.main``) in this process, output
    captured: for command lines refused before anything starts, where a child process would only
    add an interpreter's start (about a second each). An exception that escapes ``main`` is a
    traceback the user would see, and fails the test."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        _without_fleetbench_variables(),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's refusals
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(
        ["fleetbench", *args], code, stdout.getvalue(), stderr.getvalue()
    )
