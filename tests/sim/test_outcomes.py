from __future__ import annotations

from sim.outcomes import judge_forged, judge_held, judge_issuance, refusal_reason

EXPIRED = (
    'Bearer realm="fleetbench", error="invalid_token", '
    'error_description="expired: token has expired"'
)


def test_refusal_reason_reads_the_rfc6750_challenge() -> None:
    assert refusal_reason(401, EXPIRED) == "expired"
    assert refusal_reason(401, 'Bearer realm="fleetbench"') == "missing"
    assert (
        refusal_reason(403, 'Bearer realm="x", error="insufficient_scope"') == "insufficient_scope"
    )
    assert refusal_reason(404, None) == "http_404"


def test_a_held_token_refused_for_expiry_is_expected_only_once_expired() -> None:
    assert judge_held(401, "expired", exp=100.0, now=101.0, leeway_s=0) == "rejected_as_expected"
    assert judge_held(401, "expired", exp=100.0, now=50.0, leeway_s=0) == "refused_valid"
    assert judge_held(401, "signature", exp=100.0, now=50.0, leeway_s=0) == "refused_valid"


def test_a_held_token_accepted_long_after_expiry_is_accepted_invalid() -> None:
    assert judge_held(202, "", exp=100.0, now=105.0, leeway_s=10) == "ok"
    assert judge_held(202, "", exp=100.0, now=200.0, leeway_s=10) == "accepted_invalid"


def test_failures_are_their_own_outcomes() -> None:
    for judge in (judge_forged, judge_issuance):
        assert judge(0) == "transport_error"
        assert judge(503) == "server_error"
    assert judge_held(500, "", exp=1e12, now=0, leeway_s=0) == "server_error"


def test_a_forged_credential_must_be_refused() -> None:
    assert judge_forged(401) == "rejected_as_expected"
    assert judge_forged(403) == "rejected_as_expected"
    assert judge_forged(200) == "accepted_invalid"
    assert judge_issuance(200) == "ok"
    assert judge_issuance(401) == "refused_valid"
