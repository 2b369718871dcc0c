"""What the orchestrator sets on the processes it starts: their cores and their open-files limit."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

import psutil

__all__ = ["pin_to", "raise_open_files_limit", "running_on", "split_cores"]


def raise_open_files_limit() -> None:
    """Children inherit it: the target and Locust each hold one connection per device."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def split_cores(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(target cores, generator cores): the first core and the rest, when there are two or more."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def pin_to(pid: int, cpus: set[int] | None) -> None:
    """Pin a just-started process to ``cpus``; the threads and children it makes later inherit it.
    Where the platform cannot pin (or the process already ended) it runs unpinned."""
    if not cpus:
        return
    with contextlib.suppress(psutil.Error, AttributeError, OSError):
        psutil.Process(pid).cpu_affinity(sorted(cpus))


@contextlib.contextmanager
def running_on(cpus: set[int] | None) -> Iterator[None]:
    """This process on ``cpus`` for the block, and back where it was after (none: as it is)."""
    if not cpus:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
