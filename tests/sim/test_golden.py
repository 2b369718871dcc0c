"""The golden summaries (tests/sim/summaries/) stand for real runs: each reads as a summary, each is
the run it says it is, and a fresh real mixed run has the golden mixed run's shape."""

from __future__ import annotations

import types
import typing
from typing import Any

from sim.artefacts.summary_file import Summary
from sim.outcomes import OUTCOMES
from tests.sim.conftest import golden
from tests.sim.golden import RUNS


def _shape(value: Any, kind: Any, path: str = "$") -> set[str]:
    """The key paths of ``value`` read as type ``kind``: a mapping's keys (``dict[str, X]``) are
    ``*`` and a list's items ``[]``, since which keys a run fills is data; so is a key naming an
    outcome, as counts per outcome are kept only when not zero."""
    origin = typing.get_origin(kind)
    if value is None:
        return set()
    if origin in (typing.Union, types.UnionType):
        (arm,) = (a for a in typing.get_args(kind) if a is not type(None))
        return _shape(value, arm, path)
    if typing.is_typeddict(kind):
        hints = typing.get_type_hints(kind)
        found = set()
        for key, item in value.items():
            where = f"{path}.{'<outcome>' if key in OUTCOMES else key}"
            found |= {where} | _shape(item, hints[key], where)
        return found
    if origin is dict:
        return set().union(
            *(_shape(v, typing.get_args(kind)[1], f"{path}.*") for v in value.values())
        )
    if origin is list:
        return set().union(*(_shape(v, typing.get_args(kind)[0], f"{path}[]") for v in value))
    return set()


def test_each_golden_summary_reads_as_a_summary_of_the_run_it_names() -> None:
    summaries = {name: golden(name) for name in RUNS}  # read_summary validates the type
    mixed, slow, forged = summaries["mixed"], summaries["slow"], summaries["forged_accepted"]
    assert {r["scenario"] for r in mixed["requests"]} >= {
        "issuance", "verification", "expiry", "rejection"
    }  # fmt: skip
    assert mixed["run"]["parameters"]["interval_s"] == 0.1
    assert slow["run"]["parameters"]["interval_s"] == 0.5
    assert forged["outcomes"]["accepted_invalid"] > 0
    assert not forged["run"]["target"]["embedded"]
    mqtt = summaries["mqtt"]
    assert mqtt["run"]["parameters"].get("transport") == "mqtt"
    assert {r["endpoint"] for r in mqtt["requests"]} >= {"mqtt connect", "mqtt publish"}
    assert mqtt["mqtt"]["closes"].get("expiry_close", 0) > 0


def test_a_real_run_has_the_golden_summarys_shape(real_mixed_summary: Summary) -> None:
    real, kept = _shape(real_mixed_summary, Summary), _shape(golden("mixed"), Summary)
    assert real == kept, (
        f"only in a real run: {sorted(real - kept)}; only in the golden one: {sorted(kept - real)}"
        " (make the golden summaries again: python -m tests.sim.golden)"
    )
