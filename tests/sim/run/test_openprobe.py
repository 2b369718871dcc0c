"""The independent open-model client (``sim.run.openprobe``, capacitybench's second opinion): it
sends the rate asked, times from the intended send, and counts what was not a 200."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests

from sim.run.openprobe import probe
from tests.conftest import StartTarget
from tests.sim.conftest import serve_stalling_api

STALL_S = 2.0


@pytest.fixture
def stalling_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve_stalling_api(monkeypatch, 2, STALL_S) as url:
        yield url


def test_the_probe_sends_the_rate_and_counts_the_answers(start_target: StartTarget) -> None:
    target = start_target("ES256")
    token = target.device_token("probe-device", secrets.token_urlsafe(32))
    result = probe(target.port, "/api/data", token, 100.0, 5, 3.0, warmup_s=0.5)
    # 100 req/s for 3 s, each connection from a random phase: 300 intended sends, +-1 each.
    assert 295 <= result.sent <= 305, result
    assert result.ok == result.sent and result.other == 0, result
    assert 0 < result.corrected_p50_us <= result.corrected_p99_us, result
    refused = probe(target.port, "/api/data", "not-a-token", 100.0, 5, 1.0, warmup_s=0.2)
    assert refused.ok == 0 and refused.other == refused.sent > 0, refused


def test_a_stall_shows_in_the_corrected_latency(stalling_api: str) -> None:
    port = int(stalling_api.rsplit(":", 1)[1])
    # The stall starts 2 s after the first request (the 0.2 s start plus the 1 s warm-up come
    # first) and holds every request for up to 2 s: one request per connection waits it out,
    # while the ~200 sends due meanwhile are late by up to the whole stall.
    result = probe(port, "/devices/d-1/data", "any", 100.0, 5, 6.0, warmup_s=1.0)
    assert result.corrected_p99_us >= 0.5 * STALL_S * 1_000_000, result
    assert result.corrected_p99_us > 5 * result.service_p99_us, result
    received = requests.get(f"{stalling_api}/stats", timeout=5).json()["requests"]
    assert received >= result.sent, (received, result)  # the warm-up's requests come on top
