"""The outcome account: every request is exactly one of six outcomes, judged by what was sent
(the scenario that sent it)."""

from __future__ import annotations

import re
from typing import Literal, get_args

__all__ = [
    "FATAL_OUTCOMES",
    "OUTCOMES",
    "SCENARIOS",
    "Outcome",
    "Scenario",
    "judge_forged",
    "judge_held",
    "judge_issuance",
    "refusal_reason",
]

Outcome = Literal[
    "ok",
    "rejected_as_expected",
    "refused_valid",
    "accepted_invalid",
    "server_error",
    "transport_error",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# What a device sends: a token request, a held token (fresh, or kept past its exp) or a bad one.
# Named here, under the artefact types that count by them; sim/shape/scenarios.py parses weights.
Scenario = Literal["issuance", "verification", "expiry", "rejection"]
SCENARIOS: tuple[Scenario, ...] = get_args(Scenario)
# A bad token accepted is a security failure: it fails the run, always.
FATAL_OUTCOMES: frozenset[Outcome] = frozenset({"accepted_invalid"})

# Clock slop between the generator and the target, on top of the target's own leeway.
CLOCK_SLOP_S = 2.0
_DESCRIPTION = re.compile(r'error_description="([a-z_]{1,40}):')
_ERROR = re.compile(r'error="([a-z_]{1,40})"')


def refusal_reason(status: int, www_authenticate: str | None) -> str:
    """The refusal class from an RFC 6750 challenge: ``expired``, ``signature``, ...;
    ``missing`` for a challenge without an error code, ``insufficient_scope`` for a 403, else
    ``http_<status>``."""
    if www_authenticate:
        described = _DESCRIPTION.search(www_authenticate)
        if described:
            return described.group(1)
        error = _ERROR.search(www_authenticate)
        if error:
            return error.group(1)
        if status == 401:
            return "missing"
    return f"http_{status}"


def _failed(status: int) -> Outcome | None:
    if status == 0:
        return "transport_error"
    if status >= 500:
        return "server_error"
    return None


def judge_held(status: int, reason: str, *, exp: float, now: float, leeway_s: float) -> Outcome:
    """A request with a genuine token the device holds, possibly past its ``exp`` on purpose.

    Refused for expiry once its ``exp`` has passed: expected. Accepted past ``exp`` plus the
    target's leeway: a bad token accepted. Refused while still valid: a valid token refused.
    """
    failed = _failed(status)
    if failed is not None:
        return failed
    expired = now >= exp - CLOCK_SLOP_S
    if 200 <= status < 300:
        if now > exp + leeway_s + CLOCK_SLOP_S:
            return "accepted_invalid"
        return "ok"
    if status == 401 and reason == "expired" and expired:
        return "rejected_as_expected"
    return "refused_valid"


def judge_forged(status: int) -> Outcome:
    """A request carrying a forged or broken credential: any 4xx refusal is what we expect."""
    failed = _failed(status)
    if failed is not None:
        return failed
    if 200 <= status < 400:
        return "accepted_invalid"
    return "rejected_as_expected"


def judge_issuance(status: int) -> Outcome:
    """A token request with the device's genuine credential."""
    failed = _failed(status)
    if failed is not None:
        return failed
    return "ok" if status == 200 else "refused_valid"
