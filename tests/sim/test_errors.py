"""sim/errors.py: one tree under SimError, so the CLI turns every failure into one line."""

from __future__ import annotations

import inspect

import pytest

import sim.errors
import target.errors
from sim.errors import Interrupted, SimError, TargetStartError, TargetUnusable
from sim.run.embedded import EmbeddedTarget


def test_every_simulator_error_is_a_sim_error() -> None:
    classes = [c for _, c in inspect.getmembers(sim.errors, inspect.isclass)]
    assert len(classes) == len(sim.errors.__all__)
    assert all(issubclass(c, SimError) for c in classes)
    # Was a RuntimeError outside the tree, re-wrapped by hand wherever an engine started a target.
    assert issubclass(TargetStartError, TargetUnusable)
    assert issubclass(Interrupted, SimError)


def test_no_simulator_error_shares_a_name_with_the_targets() -> None:
    ours = {name for name, _ in inspect.getmembers(sim.errors, inspect.isclass)}
    theirs = {name for name, _ in inspect.getmembers(target.errors, inspect.isclass)}
    assert not ours & theirs


@pytest.mark.slow
def test_a_target_that_does_not_start_raises_a_target_start_error() -> None:
    bad = EmbeddedTarget("ES256", startup_timeout_s=10, signing_key="/nonexistent/key.pem")
    try:
        bad.start()
    except TargetStartError as e:
        assert "target exited at start" in str(e)
    else:
        raise AssertionError("the embedded target started with a missing signing key")
    finally:
        bad.stop()
