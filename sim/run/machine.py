"""The machine and software a measurement ran on, as every results file records them."""

from __future__ import annotations

import contextlib
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sim import __version__

__all__ = ["cpu_model", "versions"]

PACKAGES = ("locust", "hdrhistogram", "pyjwt", "cryptography", "starlette", "uvicorn")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    found = {"fleetbench": __version__, "python": platform.python_version()}
    for package in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found
