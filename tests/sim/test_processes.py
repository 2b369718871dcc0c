"""sim/processes.py: cores and limits set on the processes a run starts."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import psutil
import pytest

from sim.processes import pin_to, raise_open_files_limit, split_cores


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_pin_to_pins_a_started_process_and_what_it_starts() -> None:
    core = min(os.sched_getaffinity(0))
    code = "import os, time; time.sleep(0.5); print(sorted(os.sched_getaffinity(0)))"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pin_to(child.pid, {core})
        assert psutil.Process(child.pid).cpu_affinity() == [core]
        out, _ = child.communicate(timeout=20)
    finally:
        child.kill()
    assert out.strip() == f"[{core}]"


def test_split_cores_gives_the_target_one_core_and_locust_the_rest() -> None:
    target, generator = split_cores(True)
    if len(os.sched_getaffinity(0)) < 2:
        assert (target, generator) == (None, None)
    else:
        assert target is not None and generator is not None and len(target) == 1
        assert not target & generator
    assert split_cores(False) == (None, None)


def test_open_files_limit_is_raised_to_the_hard_limit() -> None:
    raise_open_files_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard
