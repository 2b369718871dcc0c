"""The shared micro-measurement core, and the thin command over it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from target.costs import micro_benchmark, per_call_us, raw_verifier
from target.jose.algorithms import ALGORITHMS

FIGURES = {"sign_us", "verify_us", "raw_verify_us", "naive_verify_us", "cached_verify_us"}


def test_micro_benchmark_measures_every_figure() -> None:
    figures = micro_benchmark("HS256", budget_s=0.02)
    assert set(figures) == FIGURES | {"token_bytes"}
    assert all(figures[name] > 0 for name in FIGURES)
    assert 200 < figures["token_bytes"] < 1000


def test_raw_verifier_checks_a_real_signature() -> None:
    spec = ALGORITHMS["ES256"]
    key = spec.make_key(spec.generate())
    signature = spec.pyjwt.sign(b"message", key.private)  # the JWS r || s form
    check = raw_verifier(key, b"message", signature)
    check()  # raises InvalidSignature if the ceiling checked the wrong thing
    assert per_call_us(check, 0.01) > 0


@pytest.mark.slow
def test_the_simulator_does_not_import_the_benchmark_command() -> None:
    code = "import sys, sim.sweep.compare; print('benchmarks.sign' in sys.modules)"
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert imported.stdout.strip() == "False"
