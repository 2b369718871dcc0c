"""Running one corpus case against the target and judging the answer."""

from __future__ import annotations

import re

from sim.attack.listener import Listener
from sim.attack.session import AttackSession
from sim.attack.verdicts import CaseResult, Verdict, expected_text, judge
from sim.corpus import (
    Case,
    ForgeContext,
    TokenCase,
    TokenContext,
    common_secret_name,
    common_secrets,
    find_common_secret,
)
from sim.outcomes import refusal_reason
from sim.untrusted import Answer

__all__ = ["run_case", "run_token_case", "secret_strength"]

_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")  # as RFC 6749 error codes read; else the status


def _oauth_error(response: Answer) -> str:
    """The RFC 6749 error code the answer names (``invalid_grant``), if it reads as one."""
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and _ERROR_CODE.match(error):
        return error
    return f"http_{response.status_code}"


def run_case(
    session: AttackSession, case: Case, ctx: ForgeContext, listener: Listener
) -> CaseResult:
    """A forged bearer token against a resource endpoint."""
    expected = expected_text(case.expected_status, case.expected_reasons)
    try:
        forged = case.forge(ctx)
    except (ValueError, KeyError, TypeError, StopIteration) as e:
        # The target's tokens lack what this forgery alters (a foreign target's token shape).
        got = f"not forged: {type(e).__name__}"
        return CaseResult(case.name, case.family, case.description, expected, got, "skipped")
    before = listener.count()
    status, response = session.resource(
        forged.endpoint or "config", forged.device_id, forged.authorization
    )
    reason = (
        refusal_reason(status, response.headers.get("www-authenticate"))
        if response is not None
        else "none"
    )
    verdict = judge(status, reason, case.expected_status, case.expected_reasons, False)
    got = f"{status} {reason}" if status else "no HTTP answer"
    if listener.count() > before:
        verdict, got = "fetched", f"{got}, after fetching the key URL"
    return CaseResult(
        case.name, case.family, case.description, expected, got, verdict, status, reason
    )


def run_token_case(session: AttackSession, case: TokenCase, ctx: TokenContext) -> CaseResult:
    """A forged credential or assertion against the token endpoint."""
    forged = case.forge(ctx)
    expected = expected_text(case.expected_status, case.expected_errors)

    def result(got: str, verdict: Verdict, status: int = 0, reason: str = "") -> CaseResult:
        return CaseResult(
            case.name, case.family, case.description, expected, got, verdict, status, reason
        )

    if forged.replay:
        first, _ = session.token(forged.form, forged.basic)
        if first != 200:  # the genuine first use was refused: the replay proves nothing
            return result(f"first use answered {first}, not 200", "mismatch", first)
    status, response = session.token(forged.form, forged.basic)
    if response is None:
        return result("no HTTP answer", "transport_error")
    error = _oauth_error(response)
    verdict = judge(status, error, case.expected_status, case.expected_errors, True)
    return result(f"{status} {error}", verdict, status, error)


WEAK_SECRET_IMPACT = (
    "anyone who tries the public list has the signing key: they can mint a valid token for any "
    "device, with any claims and any lifetime"
)


def secret_strength(
    token: str, alg: str, index: int | None = None, impact: str = WEAK_SECRET_IMPACT
) -> CaseResult:
    """An HMAC token checked offline against the common-secrets list (``index``: already found
    there, e.g. a profile's own secret). A common secret is named: it is public knowledge."""
    tried = len(common_secrets())
    if index is None:
        index = find_common_secret(token)
    if index is None:
        got = f"not signed by any of {tried} common secrets"
    else:
        got = (
            f"signed with common secret #{index} of sim/corpus/common_secrets.txt: "
            f"{common_secret_name(index)}"
        )
    return CaseResult(
        "weak_hmac_secret",
        "secret_strength",
        f"{alg} token checked offline against {tried} common secrets",
        "no common secret",
        got,
        "refused" if index is None else "weak_secret",
        severity="" if index is None else "critical",
        impact="" if index is None else impact,
    )
