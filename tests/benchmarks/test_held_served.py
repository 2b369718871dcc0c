"""The held bench counts as served only the verification requests answered ``ok``: a target
that answers some requests with a quick error must not look faster than its verification."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.held import figures, run_data
from tests.sim.conftest import serve_broken_target

pytestmark = pytest.mark.slow  # a real server and a real Locust run


@dataclass(frozen=True)
class _Served:
    url: str
    admin_key: str | None = "anything-goes-here"


def test_answers_that_are_not_ok_are_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every second answer is a 503 at once: the closed loop gets many answers, half of them
    # errors, as an overloaded service shedding load would give.
    monkeypatch.setitem(os.environ, "FLEETBENCH_ERROR_EVERY", "2")
    with serve_broken_target("tests.sim.erring_target:app") as url:
        summary, results = run_data(_Served(url), "HS256", None, 4, 2.0, rate_rps=None)
    found: dict[str, Any] = figures(summary, results, None)
    rows = [r for r in summary["requests"] if r["scenario"] == "verification"]
    ok = sum(r["outcomes"].get("ok", 0) for r in rows)
    answered = sum(r["count"] for r in rows)
    assert 0 < ok < answered, rows  # the run had both kinds
    assert found["answered_rps"] == pytest.approx(sum(r["rps"] for r in rows), abs=0.1)
    assert found["served_rps"] == pytest.approx(found["answered_rps"] * ok / answered, rel=0.01)
    assert found["served_rps"] < 0.7 * found["answered_rps"]
