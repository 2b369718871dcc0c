"""The sealing bench runs, and says what it measured."""

from __future__ import annotations

import pytest

from benchmarks.seal import main, measure


def test_sealbench_prints_the_extra_and_the_goal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--devices", "40", "--workers", "2", "--alg", "ES256", "--repeat", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("40 ES256 devices over 2 workers: shards")
    assert len([line for line in lines if line.startswith("  run ")]) == 2
    assert lines[-1].startswith("sealing adds") and "goal < 1 s" in lines[-1]


def test_sealed_shards_carry_the_same_devices_in_a_few_more_bytes() -> None:
    (cost,) = measure(30, 3, "secret", 1)
    # Per shard: a 12-byte nonce, a 16-byte tag and the msgpack of {"sealed": ...} around them.
    assert cost.plain_bytes > 3 * 30 * 40  # ids and secrets of 30 devices
    assert abs(cost.sealed_bytes - cost.plain_bytes) < 3 * 64
    assert cost.proof_ms >= 0 and cost.seal_ms >= 0 and cost.open_ms >= 0
