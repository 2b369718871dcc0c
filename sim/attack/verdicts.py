"""What one attack case came to: its verdict and how it is judged from the target's answer.

``refused`` when the target refuses with the expected status and class; ``mismatch`` when it
refuses otherwise (a warning: the token was still refused, but the answer is not the one RFC
6750/6749 and docs/target-api.md give; strict mode makes it a failure); ``accepted`` when a forged
token or credential is honoured; ``server_error`` on a 5xx (client input must never cause one);
``transport_error`` with no HTTP answer (nothing proves a refusal); ``fetched`` when the target
called the ``jku``/``x5u`` listener; ``weak_secret`` when an HMAC target signs with a common secret;
``skipped`` when the target's tokens lack what a forgery alters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from sim.artefacts import AttackVerdict

__all__ = ["PASSING", "VERDICTS", "CaseResult", "Verdict", "expected_text", "judge"]

Verdict = AttackVerdict  # written once, with attack.json's other types
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
PASSING: frozenset[Verdict] = frozenset({"refused", "mismatch", "skipped"})
STRICT_PASSING: frozenset[Verdict] = frozenset({"refused", "skipped"})


@dataclass(frozen=True)
class CaseResult:
    """One case's verdict: what was expected, what came back."""

    name: str
    family: str
    description: str
    expected: str
    got: str
    verdict: Verdict
    status: int = 0
    reason: str = ""


def judge(
    status: int, reason: str, expected_status: int, expected: frozenset[str], token_endpoint: bool
) -> Verdict:
    if status == 0:
        return "transport_error"
    if status >= 500:
        return "server_error"
    if status < 400 or (token_endpoint and status == 200):
        return "accepted"
    return "refused" if status == expected_status and reason in expected else "mismatch"


def expected_text(status: int, reasons: frozenset[str]) -> str:
    return f"{status} {'|'.join(sorted(reasons))}"
