"""``python -m target.wrkbench``'s reading of the server's own verify time (wrk itself is not run
here: the benchmark is a command that prints figures, not a test)."""

from __future__ import annotations

import pytest

from target.wrkbench import verify_totals
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
