"""``python -m benchmarks.wrk``'s reading of the server's own verify time (wrk itself is not run
here: the benchmark is a command that prints figures, not a test)."""

from __future__ import annotations

import pytest

from benchmarks.wrk import _P99, _RPS, _WRK_UNIT_MS, verify_totals
from tests.conftest import StartTarget
from tests.target.helpers import client_token, get, new_device


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_verify_totals_count_the_server_s_own_verifications(
    start_target: StartTarget, alg: str
) -> None:
    target = start_target(alg)
    device = new_device(target)
    token = client_token(target, device)
    seconds, count = verify_totals(target.url, alg)
    for _ in range(3):
        assert get(target, "/api/data", token).status_code == 200
    assert get(target, "/api/data", "not-a-token").status_code == 401  # refusals count too
    after_seconds, after_count = verify_totals(target.url, alg)
    assert after_count - count == 4
    assert 0 < after_seconds - seconds < 4.0
    assert verify_totals(target.url, "EdDSA") == (0.0, 0.0)  # another algorithm's: none


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8000/api/data
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  512.00us  14.02ms   91.00%
  Latency Distribution
     50%    1.98ms
     75%    2.20ms
     90%    2.61ms
     99%  {p99}
  29876 requests in 2.00s, 5.10MB read
Requests/sec:  14938.00
"""


@pytest.mark.parametrize(
    ("printed", "ms"), [("850.00us", 0.85), ("12.34ms", 12.34), ("1.20s", 1200.0)]
)
def test_wrk_s_p99_is_read_in_its_own_unit(printed: str, ms: float) -> None:
    text = WRK_OUTPUT.format(p99=printed)
    found = _P99.search(text)
    assert found is not None
    assert float(found.group(1)) * _WRK_UNIT_MS[found.group(2)] == pytest.approx(ms)
    assert float(_RPS.search(text).group(1)) == 14938.0  # type: ignore[union-attr]
