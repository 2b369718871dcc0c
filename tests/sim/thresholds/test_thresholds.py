"""Thresholds on real summaries: the shipped defaults pass a real run, each kind of limit breaches
(judged on golden summaries of real runs, tests/sim/summaries/), the always-on security rules
cannot be switched off, and a bad file is one line naming its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.artefacts.summary_file import Summary
from sim.thresholds import (
    ALWAYS_ON,
    Check,
    ThresholdsError,
    default_thresholds,
    evaluate,
    parse_thresholds,
)
from tests.commands import fleetbench_here
from tests.sim.conftest import golden

REPO = Path(__file__).resolve().parents[3]


def _checks(text: str, summary: Summary) -> list[Check]:
    return evaluate(parse_thresholds(text, "team.toml"), summary)


def _failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


def test_shipped_defaults_pass_on_a_real_run(real_mixed_summary: Summary) -> None:
    mixed_summary = real_mixed_summary
    checks = evaluate(default_thresholds(), mixed_summary)
    assert not _failed(checks), [c.breaches() for c in _failed(checks)]
    assert {c.alg for c in checks} == {"HS256"}
    assert all(c.measured for c in checks)  # every shipped threshold found rows to measure
    metrics = {c.threshold.metric for c in checks}
    assert {"p50_us", "p95_us", "p99_us", "max_us", "error_ratio", "min_rps"} <= metrics
    assert {c.threshold.metric for c in checks if c.threshold.always_on} == set(ALWAYS_ON)
    # p95 is in the summary now, between p90 and p99
    latency = next(r for r in mixed_summary["requests"] if r["scenario"] == "verification")
    assert latency["latency_us"]["p90"] <= latency["latency_us"]["p95"]
    assert latency["latency_us"]["p95"] <= latency["latency_us"]["p99"]


def test_latency_breach_names_the_measured_value_and_the_limit(
    mixed_summary: Summary,
) -> None:
    checks = _checks(
        """
        [[threshold]]
        name = "telemetry"
        scenario = "verification"
        endpoint = "telemetry"
        outcome = "ok"
        p50_us = 1
        p95_us = 60_000_000
        """,
        mixed_summary,
    )
    (breached,) = _failed(checks)
    row = next(
        r
        for r in mixed_summary["requests"]
        if (r["scenario"], r["endpoint"]) == ("verification", "telemetry")
    )
    p50 = row["latency_by_outcome_us"]["ok"]["p50"]
    assert breached.threshold.metric == "p50_us"
    assert breached.threshold.line == 7
    assert breached.breaches() == [
        f"telemetry: p50_us {p50:.0f} µs > 1 µs at verification telemetry"
    ]


def test_rps_breach_on_the_run_and_on_rows(mixed_summary: Summary) -> None:
    checks = _checks(
        """
        [run]
        min_rps = 1_000_000

        [[threshold]]
        scenario = ["verification", "expiry"]
        endpoint = "telemetry"
        min_rps = 1_000_000

        [[threshold]]
        scenario = "rejection"
        endpoint = "telemetry"
        outcome = "rejected_as_expected"
        min_rps = 0.5
        """,
        mixed_summary,
    )
    failed = _failed(checks)
    assert [c.threshold.name for c in failed] == ["run", "threshold #1"]
    rows = failed[1].breaches()
    assert len(rows) == 2 and "at verification telemetry" in rows[0] + rows[1]
    assert (
        f"min_rps {mixed_summary['totals']['rps']:.4g} req/s < 1000000" in failed[0].breaches()[0]
    )


def test_count_breach(mixed_summary: Summary) -> None:
    checks = _checks(
        """
        [run]
        refused_valid = 0
        transport_error = 0

        [[threshold]]
        name = "forgeries"
        scenario = "rejection"
        endpoint = "telemetry"
        rejected_as_expected = 0
        """,
        mixed_summary,
    )
    (breached,) = _failed(checks)
    refused = next(
        r
        for r in mixed_summary["requests"]
        if (r["scenario"], r["endpoint"]) == ("rejection", "telemetry")
    )["outcomes"]["rejected_as_expected"]
    assert refused > 0
    assert breached.breaches() == [
        f"forgeries: rejected_as_expected {refused} > 0 at rejection telemetry"
    ]


def test_a_threshold_that_matches_nothing_fails_unless_it_is_for_another_alg(
    mixed_summary: Summary,
) -> None:
    checks = _checks(
        """
        [[threshold]]
        endpoint = "config"
        p99_us = 1_000_000

        [[threshold]]
        alg = "ES256"
        p99_us = 1
        """,
        mixed_summary,
    )
    (check,) = checks[len(ALWAYS_ON) :]  # the ES256 rule does not apply to an HS256 run
    assert not check.passed
    assert check.note == "no requests matched endpoint=config"


@pytest.fixture
def forged_accepted_summary() -> Summary:
    """The golden summary of a real run against a target that accepts every token."""
    return golden("forged_accepted")


def test_error_ratio_breach(forged_accepted_summary: Summary) -> None:
    summary = forged_accepted_summary
    checks = _checks(
        """
        [run]
        error_ratio = 0.5

        [[threshold]]
        scenario = "rejection"
        endpoint = "telemetry"
        error_ratio = 0.5
        """,
        summary,
    )
    ratio = [c for c in checks if c.threshold.metric == "error_ratio"]
    assert len(ratio) == 2 and not any(c.passed for c in ratio)
    row = next(r for r in summary["requests"] if r["scenario"] == "rejection")
    assert ratio[1].measured[0].value == row["outcomes"]["accepted_invalid"] / row["count"] > 0.5


def test_always_on_rules_hold_whatever_the_file_says(
    forged_accepted_summary: Summary, mixed_summary: Summary
) -> None:
    accepted = forged_accepted_summary["outcomes"]["accepted_invalid"]
    assert accepted > 0
    for text in (
        "",
        "[run]\naccepted_invalid = 0\n",
        '[[threshold]]\nscenario = "*"\np99_us = 9e9',
    ):
        checks = _checks(text, forged_accepted_summary)
        (always,) = [c for c in checks if c.threshold.metric == "accepted_invalid"]
        assert not always.passed
        assert always.breaches() == [f"always on: accepted_invalid {accepted} > 0 at run"]
    # Raising or switching one off is refused, naming the line.
    attempts = {
        "[run]\n\naccepted_invalid = 1000\n": "line 3: accepted_invalid is always 0",
        "[run]\nserver_error = false\n": "line 2: server_error is always 0",
        "[run]\naccepted_invalid = -1\n": "line 2: accepted_invalid is always 0",
        '[[threshold]]\nscenario = "rejection"\naccepted_invalid = 5\n': "line 3: accepted_invalid",
        "[run]\naccepted_invalid_enabled = false\n": "line 2: unknown metric",
        "[always_on]\naccepted_invalid = false\n": "line 1: unknown table or key 'always_on'",
    }
    for text, message in attempts.items():
        with pytest.raises(ThresholdsError, match=message):
            parse_thresholds(text, "team.toml")
    # and on a clean run they are there and pass
    checks = _checks("", mixed_summary)
    assert [c.threshold.metric for c in checks] == list(ALWAYS_ON)
    assert all(c.passed for c in checks)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[run]\nerror_ratio = \n",
            r"^team.toml line 2, column 15: not valid TOML: Invalid value$",
        ),
        ("[run]\nmin_rps = 1\n[[threshold]\n", r"^team.toml line 3, column 12: not valid TOML"),
        ("[run]\nmin_rps = [1,\n", r"^team.toml line 2 \(end of file\): not valid TOML"),
        (
            '[run]\nmin_rps = 1\n\n[[threshold]]\nscenario = "verification"\np90_us = 5\n',
            r"^team.toml line 6: unknown metric 'p90_us' in \[\[threshold\]\] #1; known: p50_us",
        ),
        (
            '[[threshold]]\np99_us = 5\n[[threshold]]\nendpoint = "telemetry"\n  "p99_ms" = 5\n',
            r"^team.toml line 5: unknown metric 'p99_ms' in \[\[threshold\]\] #2",
        ),
        ("p99_us = 5\n", r"^team.toml line 1: unknown table or key 'p99_us'"),
        ("[run]\np99_us = 5\n", r"^team.toml line 2: p99_us needs request rows"),
        ('[[threshold]]\nscenario = "verificaton"\np99_us = 5\n', r"line 2: unknown scenario"),
        ('[[threshold]]\noutcome = "fine"\np99_us = 5\n', r"line 2: unknown outcome 'fine'"),
        (
            '[[threshold]]\noutcome = "ok"\nerror_ratio = 0.1\n',
            r"line 2: outcome applies to latency and min_rps, not error_ratio",
        ),
        ('[[threshold]]\nname = "x"\n', r"line 2: \[\[threshold\]\] #1 \(x\) names no metric"),
        ("[run]\nerror_ratio = 2\n", r"line 2: error_ratio is a share between 0 and 1"),
        ('[run]\nmin_rps = "fast"\n', r"line 2: min_rps must be a number"),
        ("[run]\nrefused_valid = 0.5\n", r"line 2: refused_valid is a count"),
        ("[run]\nmax_shortfall = 1.5\n", r"line 2: max_shortfall is a share between 0 and 1"),
        ("[run]\nmax_in_flight = 2.5\n", r"line 2: max_in_flight is a count"),
        (
            '[[threshold]]\nscenario = "verification"\nmax_shortfall = 0.1\n',
            r"line 3: max_shortfall is a limit on the whole run: put it in \[run\]",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ThresholdsError, match=message) as caught:
        parse_thresholds(text, "team.toml")
    assert "\n" not in str(caught.value)


def test_smoke_refuses_a_bad_file_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "team.toml"
    bad.write_text("[run]\nmin_rps = 20\n\n[[threshold]]\np99_millis = 5\n")
    result = fleetbench_here("smoke", "--thresholds", str(bad), "--results", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"fleetbench: error: {bad} line 5: unknown metric 'p99_millis' in [[threshold]] #1; "
        "known: p50_us, p95_us, p99_us, max_us, error_ratio, min_rps, rejected_as_expected, "
        "refused_valid, accepted_invalid, server_error, transport_error, name, endpoint, "
        "scenario, alg, outcome, latency"
    ]
    assert not (tmp_path / "r").exists()


def test_protected_selects_every_row_but_the_token_calls(real_mixed_summary: Summary) -> None:
    mixed_summary = real_mixed_summary
    checks = _checks(
        """
        [[threshold]]
        endpoint = "protected"
        max_us = 60_000_000
        """,
        mixed_summary,
    )
    (check,) = checks[len(ALWAYS_ON) :]
    measured = {m.where for m in check.measured}
    expected = {
        f"{r['scenario']} {r['endpoint']}"
        for r in mixed_summary["requests"]
        if not r["endpoint"].startswith("token ")
    }
    assert measured == expected and expected
    assert mixed_summary["run"]["profile"]["endpoints"] == ["telemetry", "config", "data"]
    assert mixed_summary["run"]["profile"]["token_endpoint"] is True


def test_limits_on_what_a_profile_cannot_send_do_not_apply(mixed_summary: Summary) -> None:
    """A minted-token profile (seed-express) has no token endpoint and runs no issuance: the
    shipped token-endpoint and issuance limits do not apply; a file naming an endpoint the profile
    has, with nothing measured on it, still fails."""
    minted = json.loads(json.dumps(mixed_summary))
    minted["run"]["profile"] = {
        "name": "seed-express",
        "source": "(shipped)",
        "endpoints": ["data", "telemetry"],
        "token_endpoint": False,
    }
    minted["requests"] = [r for r in minted["requests"] if not r["endpoint"].startswith("token ")]
    minted["requests"] = [r for r in minted["requests"] if r["scenario"] != "issuance"]
    del minted["scenarios"]["issuance"]
    names = {c.threshold.name for c in evaluate(default_thresholds(), minted)}
    assert "token endpoint latency" not in names and "issuance" not in names
    assert {"protected endpoint latency", "forged tokens refused"} <= names
    # Still measured on our own profile's run, which has a token endpoint and issuance:
    ours = {c.threshold.name for c in evaluate(default_thresholds(), mixed_summary)}
    assert {"token endpoint latency", "issuance"} <= ours
    issuance_only = '[[threshold]]\nendpoint = "data"\nscenario = "issuance"\nmax_us = 1'
    assert _checks(issuance_only, minted)[len(ALWAYS_ON) :] == []  # not asked for: not applicable
    (check,) = _checks('[[threshold]]\nendpoint = "config"\nmax_us = 1', mixed_summary)[
        len(ALWAYS_ON) :
    ]
    assert not check.passed and check.note


def test_a_team_file_may_name_the_profile_s_own_endpoints(tmp_path: Path) -> None:
    from sim.thresholds import load_thresholds

    path = tmp_path / "team.toml"
    path.write_text('[[threshold]]\nendpoint = "items"\np99_us = 50_000\n')
    (threshold,) = load_thresholds(path, ("items", "orders")).thresholds[len(ALWAYS_ON) :]
    assert threshold.selector is not None and threshold.selector.endpoint == ("items",)
    with pytest.raises(ThresholdsError, match=r"team.toml line 2: unknown endpoint 'items'"):
        load_thresholds(path)
