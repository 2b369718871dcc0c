"""What one attack case came to: its verdict and how it is judged from the target's answer.

``refused`` when the target refuses with the expected status and class; ``mismatch`` when it
refuses otherwise (a warning: the token was still refused, but the answer is not the one RFC
6750/6749 and docs/target-api.md give; strict mode makes it a failure); ``accepted`` when a forged
token or credential is honoured; ``server_error`` on a 5xx (client input must never cause one);
``transport_error`` with no HTTP answer (nothing proves a refusal); ``fetched`` when the target
called the ``jku``/``x5u`` listener; ``weak_secret`` when an HMAC target signs with a common secret;
``skipped`` when the target's tokens lack what a forgery alters; ``finding`` when the API accepts a
correctly signed token that breaks a rule whose acceptance is a weakness, not a forgery (through
a profile holding the signing key, :mod:`sim.attack.signed`; a failure only in strict mode).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import get_args

from sim.artefacts.attack_file import (
    AttackCase,
    AttackCounts,
    AttackRun,
    AttackSeverity,
    AttackTransport,
    AttackVerdict,
)
from sim.outcomes import Outcome

__all__ = [
    "PASSING",
    "STRICT_PASSING",
    "VERDICTS",
    "AttackReport",
    "CaseResult",
    "Severity",
    "Verdict",
    "expected_text",
    "judge",
]

Verdict = AttackVerdict  # written once, with attack.json's other types
Severity = AttackSeverity
SEVERITIES: tuple[Severity, ...] = get_args(Severity)  # the mildest first
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
PASSING: frozenset[Verdict] = frozenset({"refused", "mismatch", "skipped", "finding", "valid"})
STRICT_PASSING: frozenset[Verdict] = frozenset({"refused", "skipped", "valid"})


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
    severity: Severity = ""  # of an acceptance (through a profile); "" when not graded
    impact: str = ""  # what the acceptance lets an attacker do
    transport: AttackTransport = "http"
    outcome: Outcome | None = None  # over MQTT: the run's outcome the verdict stands for


@dataclass
class AttackReport:
    """The corpus against one target (one algorithm), through one profile."""

    target: str
    embedded: bool
    token_alg: str
    results: list[CaseResult] = field(default_factory=list)
    still_serving: bool = False
    listener_requests: int = 0
    elapsed_s: float = 0.0
    profile: str = "fleetbench"
    broker: str = ""  # over MQTT: the broker's address

    @property
    def transport(self) -> AttackTransport:
        return "mqtt" if self.broker else "http"

    def counts(self) -> dict[str, int]:
        counted = Counter(result.verdict for result in self.results)
        return {verdict: counted[verdict] for verdict in VERDICTS}

    def failures(self, strict: bool = False) -> list[str]:
        allowed = STRICT_PASSING if strict else PASSING
        failed = [
            f"{r.name}: {r.verdict}{f', {r.severity}' if r.severity else ''} ({r.got})"
            for r in self.results
            if r.verdict not in allowed
        ]
        if self.listener_requests:
            failed.append(f"the target fetched the jku/x5u listener {self.listener_requests} times")
        if not self.still_serving:
            failed.append("the target no longer serves a valid device after the corpus")
        return failed

    def findings(self) -> list[CaseResult]:
        """Every graded acceptance, the worst first."""
        graded = [r for r in self.results if r.severity]
        return sorted(graded, key=lambda r: SEVERITIES.index(r.severity), reverse=True)

    def to_json(self, strict: bool = False) -> AttackRun:
        counted = Counter(result.verdict for result in self.results)
        counts: AttackCounts = {
            "cases": len(self.results),
            "refused": counted["refused"],
            "mismatch": counted["mismatch"],
            "skipped": counted["skipped"],
            "accepted": counted["accepted"],
            "server_error": counted["server_error"],
            "transport_error": counted["transport_error"],
            "fetched": counted["fetched"],
            "weak_secret": counted["weak_secret"],
            "finding": counted["finding"],
        }
        run: AttackRun = {
            "target": self.target,
            "profile": self.profile,
            "embedded": self.embedded,
            "token_alg": self.token_alg,
            "passed": not self.failures(strict),
            "failures": self.failures(strict),
            "counts": counts,
            "still_serving": self.still_serving,
            "listener_requests": self.listener_requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "cases": [_case_json(result) for result in self.results],
        }
        if self.broker:
            counts["valid"] = counted["valid"]
            counts["refused_valid"] = counted["refused_valid"]
            run["transport"], run["broker"] = "mqtt", self.broker
        return run


def _case_json(result: CaseResult) -> AttackCase:
    case: AttackCase = {
        "name": result.name,
        "family": result.family,
        "description": result.description,
        "expected": result.expected,
        "got": result.got,
        "verdict": result.verdict,
        "status": result.status,
        "reason": result.reason,
        "severity": result.severity,
        "impact": result.impact,
    }
    if result.transport != "http":
        case["transport"] = result.transport
    if result.outcome is not None:
        case["outcome"] = result.outcome
    return case


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
