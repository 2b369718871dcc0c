"""The ``fleetbench`` command as a user runs it: a child process, its output captured, bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fleetbench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``fleetbench ARGS`` from the repository, without the caller's ``FLEETBENCH_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
