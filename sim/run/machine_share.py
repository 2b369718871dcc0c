"""Whether the load generator shares its machine with the target: a loopback ``--target`` is
on this host, and an unpinned generator then competes with it for the same cores (on a 2-core
machine that cost about a fifth of the generator's rate without a word)."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

__all__ = ["available_cpus", "on_this_machine", "parse_cpus", "sharing_note"]


def on_this_machine(url: str) -> bool:
    """Whether ``url``'s host is this machine's loopback (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def available_cpus() -> set[int]:
    """The cores this process may run on (all of them where the platform cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def parse_cpus(text: str) -> set[int]:
    """``1``, ``1,3`` or ``2-3`` -> core numbers, each one this process may use; else a
    ValueError saying which."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"{text!r}: say cores as 1, 1,3 or 2-3")
        cpus.update(range(int(first), int(last or first) + 1))
    unknown = sorted(cpus - available_cpus())
    if not cpus or unknown:
        raise ValueError(
            f"{text!r}: core {unknown[0] if unknown else '-'} is not one this machine gives"
            f" fleetbench (it has {', '.join(map(str, sorted(available_cpus())))})"
        )
    return cpus


def sharing_note(url: str, generator_cpus: set[int] | None) -> str | None:
    """One sentence when a loopback target and an unpinned generator share this machine."""
    if generator_cpus or not on_this_machine(url):
        return None
    return (
        f"the target ({urlsplit(url).hostname}) is on this machine and the generator was not"
        f" pinned: both competed for the same {len(available_cpus())} cores, so the figures"
        " are bounded by that too (give the generator its own with --generator-cpus, and the"
        " target the others, e.g. taskset)"
    )
